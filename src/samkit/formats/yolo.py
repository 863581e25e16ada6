"""YOLO label files: segmentation lines, detection boxes and ``data.yaml``.

A segmentation line is ``class x1 y1 ... xn yn`` with coordinates divided by the image width /
height (polygon vertices in :mod:`samkit.polygons`' pixel-index convention, as Ultralytics uses),
clipped to [0, 1] and rounded (never truncated) to 6 decimals. One file per image; an image
without objects gets an empty file so that trainers count it as background.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from samkit.errors import ArgumentError, FormatError
from samkit.io_utils import atomic_write_text

__all__ = [
    "format_yolo_lines",
    "read_data_yaml",
    "read_yolo_boxes",
    "read_yolo_seg",
    "read_yolo_seg_rows",
    "write_data_yaml",
    "write_yolo",
]

DECIMALS = 6


def _fmt(values: np.ndarray) -> list[str]:
    # "%.6f" rounds to nearest; + 0.0 turns a clipped -0.0 into 0.0.
    return [f"{v:.{DECIMALS}f}" for v in (values + 0.0).tolist()]


def _check_class_id(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or int(value) < 0:
        raise ArgumentError(f"{name} must be a non-negative int, got {value!r}")
    return int(value)


def format_yolo_lines(
    polygons_per_object: Sequence[Sequence[np.ndarray]],
    class_ids: Sequence[int] | np.ndarray,
    img_w: int,
    img_h: int,
) -> list[str]:
    """YOLO-seg lines for a set of objects, one line per polygon.

    Args:
        polygons_per_object: for each object, its polygons ``(K, 2)`` in pixel ``(x, y)``; an
            object with several parts gives several lines with the same class. Polygons with
            fewer than 3 points are skipped.
        class_ids: one class index per object (same length as ``polygons_per_object``).
        img_w, img_h: image size in pixels, used for normalisation.

    Returns:
        Lines without trailing newline, ``"class x1 y1 ... xn yn"``.
    """
    if int(img_w) <= 0 or int(img_h) <= 0:
        raise ArgumentError(f"img_w and img_h must be positive, got {img_w}x{img_h}")
    ids = list(np.asarray(class_ids).reshape(-1).tolist()) if len(class_ids) else []
    if len(ids) != len(polygons_per_object):
        raise ArgumentError(
            f"class_ids has {len(ids)} entries but polygons_per_object has "
            f"{len(polygons_per_object)} objects"
        )
    scale = np.array([float(img_w), float(img_h)])
    lines: list[str] = []
    for obj_index, (cls, polys) in enumerate(zip(ids, polygons_per_object, strict=True)):
        cls_id = _check_class_id(cls, f"class_ids[{obj_index}]")
        for poly in polys:
            pts = np.asarray(poly, dtype=np.float64)
            if pts.ndim != 2 or pts.shape[1] != 2:
                raise ArgumentError(
                    f"polygons_per_object[{obj_index}] must hold (K, 2) arrays, got {pts.shape}"
                )
            if len(pts) < 3:
                continue
            xy = np.clip(pts / scale, 0.0, 1.0).reshape(-1)
            lines.append(" ".join([str(cls_id), *_fmt(xy)]))
    return lines


def write_yolo(path: str | os.PathLike[str], lines: Sequence[str]) -> Path:
    """Write YOLO label lines atomically; an empty file when ``lines`` is empty."""
    text = "".join(f"{line}\n" for line in lines)
    return atomic_write_text(path, text)


_PLAIN = re.compile(r"^[A-Za-z_][A-Za-z0-9_ .\-/]*$")
_YAML_WORDS = {"true", "false", "yes", "no", "on", "off", "null", "y", "n"}


def _yaml_str(value: str) -> str:
    """A YAML scalar for ``value``: plain when unambiguous, else JSON-style double quotes (every
    JSON string is a valid YAML double-quoted scalar)."""
    if _PLAIN.match(value) and value.lower() not in _YAML_WORDS and value == value.strip():
        return value
    return json.dumps(value, ensure_ascii=False)


def write_data_yaml(
    path: str | os.PathLike[str],
    names: Mapping[int, str] | Sequence[str],
    *,
    root: str | os.PathLike[str] | None = None,
    train: str = "images/train",
    val: str = "images/val",
    test: str | None = None,
) -> Path:
    """Write an Ultralytics ``data.yaml`` atomically (hand-written YAML; no pyyaml needed).

    Args:
        names: class names as a list, or a dict whose keys are exactly ``0 .. n-1``.
        root: dataset root written as ``path:`` (omitted when None: paths relative to the yaml).
        train, val, test: image folders or list files relative to ``root``.
    """
    if isinstance(names, Mapping):
        table = dict(names)
    elif isinstance(names, (str, bytes)) or not isinstance(names, Sequence):
        raise ArgumentError(f"names must be a list of str or a dict int -> str, got {names!r}")
    else:
        table = dict(enumerate(names))
    if sorted(table) != list(range(len(table))) or not all(isinstance(k, int) for k in table):
        raise ArgumentError(f"names keys must be the class ids 0..n-1, got {sorted(table)!r}")
    if not all(isinstance(v, str) and v for v in table.values()):
        raise ArgumentError(f"names must map every class id to a non-empty str, got {table!r}")
    out = []
    if root is not None:
        out.append(f"path: {_yaml_str(os.fspath(root))}")
    out.append(f"train: {_yaml_str(train)}")
    out.append(f"val: {_yaml_str(val)}")
    if test is not None:
        out.append(f"test: {_yaml_str(test)}")
    out.append(f"nc: {len(table)}")
    out.append("names:")
    out.extend(f"  {k}: {_yaml_str(table[k])}" for k in sorted(table))
    return atomic_write_text(path, "\n".join(out) + "\n")


def _class_token(token: str, where: str) -> int:
    try:
        value = float(token)
    except ValueError:
        raise FormatError(f"{where}: class id {token!r} is not a number") from None
    if value < 0 or value != int(value):
        raise FormatError(f"{where}: class id {token!r} is not a non-negative integer")
    return int(value)


def _read_rows(path: str | os.PathLike[str]) -> list[tuple[str, list[str]]]:
    rows = []
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise FormatError(f"{os.fspath(path)}: a YOLO label file is UTF-8 text ({e})") from None
    for n, line in enumerate(text.splitlines(), start=1):
        tokens = line.split()
        if tokens:
            rows.append((f"{os.fspath(path)}:{n}", tokens))
    return rows


def _floats(tokens: list[str], where: str) -> np.ndarray:
    try:
        return np.array([float(t) for t in tokens], dtype=np.float64)
    except ValueError:
        raise FormatError(
            f"{where}: coordinates must be numbers, got {' '.join(tokens)!r}"
        ) from None


def read_yolo_seg(path: str | os.PathLike[str]) -> list[tuple[int, np.ndarray]]:
    """Read a YOLO-seg label file into ``[(class_id, points (K, 2) float64 normalised xy)]``.

    Blank lines are skipped; any other malformed line raises
    :class:`~samkit.errors.FormatError` (a ``ValueError``) naming file and line.
    """
    out = []
    for where, tokens in _read_rows(path):
        cls = _class_token(tokens[0], where)
        coords = tokens[1:]
        if len(coords) == 4:
            raise FormatError(f"{where}: a box line (class cx cy w h); use read_yolo_boxes")
        if len(coords) % 2 or len(coords) < 6:
            raise FormatError(
                f"{where}: expected 'class x1 y1 ... xn yn' with n >= 3, got {len(coords)} values"
            )
        out.append((cls, _floats(coords, where).reshape(-1, 2)))
    return out


def read_yolo_boxes(path: str | os.PathLike[str]) -> list[tuple[int, float, float, float, float]]:
    """Read a YOLO detection label file into ``[(class_id, cx, cy, w, h)]`` (normalised).

    A sixth column (confidence, as written by ``save_conf``) is accepted and ignored.
    """
    out = []
    for where, tokens in _read_rows(path):
        if len(tokens) not in (5, 6):
            raise FormatError(f"{where}: expected 'class cx cy w h', got {len(tokens)} values")
        cls = _class_token(tokens[0], where)
        cx, cy, w, h = _floats(tokens[1:5], where).tolist()
        out.append((cls, cx, cy, w, h))
    return out


def read_yolo_seg_rows(
    path: str | os.PathLike[str],
) -> tuple[list[tuple[str, int, int, np.ndarray]], list[tuple[str, str]]]:
    """Read a YOLO-seg label file for evaluation, keeping the good lines.

    Returns ``(rows, problems)``: ``rows`` as ``(where, row, class_id, points (K, 2) float64
    normalised xy)`` (``where`` is ``"<file>:<line>"``, ``row`` counts non-blank lines from 0),
    ``problems`` as
    ``("<file>:<line>", reason)`` for each line that is not a polygon with >= 3 points or whose
    points lie outside [0, 1] (by more than 1e-3) -- those lines are skipped.
    """
    rows: list[tuple[str, int, int, np.ndarray]] = []
    problems: list[tuple[str, str]] = []
    for index, (where, tokens) in enumerate(_read_rows(path)):
        try:
            cls = _class_token(tokens[0], where)
            coords = tokens[1:]
            if len(coords) % 2 or len(coords) < 6:
                raise FormatError(
                    f"{where}: expected 'class x1 y1 ... xn yn' with n >= 3, "
                    f"got {len(coords)} values"
                )
            pts = _floats(coords, where).reshape(-1, 2)
            if not np.isfinite(pts).all() or pts.min() < -1e-3 or pts.max() > 1 + 1e-3:
                raise FormatError(f"{where}: points outside the image (normalised [0, 1])")
        except ValueError as e:
            problems.append((where, str(e).split(": ", 1)[-1]))
            continue
        rows.append((where, index, cls, pts))
    return rows, problems


def read_data_yaml(path: str | os.PathLike[str]) -> dict[str, object]:
    """Read an Ultralytics ``data.yaml`` (needs pyyaml); ``names`` is returned as a list
    indexed by class id (a mapping with gaps gets the missing ids' numbers as their names).

    Raises:
        FormatError: the file is not plain YAML, not a mapping, or its ``names`` is neither a
            list nor a mapping of class ids to names.
    """
    try:
        import yaml
    except ImportError:
        raise ImportError("reading data.yaml needs pyyaml: pip install pyyaml") from None
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:  # safe_load also refuses python tags
        detail = " ".join(str(exc).split())
        raise FormatError(f"{p}: not a plain YAML file ({detail})") from None
    if not isinstance(data, dict):
        raise FormatError(f"{p}: a data.yaml holds a mapping, got {type(data).__name__}")
    names = data.get("names") or []
    if isinstance(names, dict) and all(isinstance(k, int) and k >= 0 for k in names):
        # indexed by class id: {0: a, 2: c} -> [a, "1", c] (an id without a name keeps its
        # number), so class 2 is "c", not the third name of a sorted list
        names = [str(names.get(k, k)) for k in range(max(names, default=-1) + 1)]
    elif not isinstance(names, list):
        raise FormatError(
            f"{p}: 'names' must be a list or a mapping class id -> name, got {names!r}"
        )
    data["names"] = [str(n) for n in names]
    return data
