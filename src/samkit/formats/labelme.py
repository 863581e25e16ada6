"""LabelMe JSON: one file per image, one polygon shape per object part.

LabelMe polygons carry no holes; an object split into several parts becomes several polygon
shapes sharing one ``group_id`` (single-part objects get ``group_id: null``). Points are
``[x, y]`` pixel indices in :mod:`samkit.polygons`' ``"centers"`` frame (vertices on boundary
pixel centres): LabelMe turns a polygon into a mask with ``PIL.ImageDraw.polygon(outline=1,
fill=1)``, which fills scanlines at integer pixel indices from ``ceil(x_left)`` to
``floor(x_right)`` and draws the outline, so these points give the mask back; pixel-edge
polygons would grow it by one pixel on the right and bottom.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from samkit.errors import ArgumentError, FormatError
from samkit.io_utils import atomic_write_text

__all__ = ["LABELME_VERSION", "labelme_objects", "labelme_record", "read_labelme", "write_labelme"]

LABELME_VERSION = "5.4.1"
_REQUIRED = ("version", "shapes", "imagePath", "imageHeight", "imageWidth")


def labelme_record(
    image_path: str | os.PathLike[str],
    img_h: int,
    img_w: int,
    shapes: Sequence[tuple[str, Sequence[np.ndarray]]],
    *,
    json_dir: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Build a LabelMe record.

    Args:
        image_path: the image file. ``imagePath`` is written relative to ``json_dir`` (the folder
            the JSON will live in) when given, else as the bare file name (JSON next to image).
        img_h, img_w: image size in pixels.
        shapes: one ``(label, polygons)`` per object; ``polygons`` is a list of ``(K, 2)``
            pixel ``(x, y)`` arrays. Polygons with fewer than 3 points are skipped; parts of one
            object share a ``group_id`` (numbered from 1 over the multi-part objects).

    Returns:
        The JSON-ready dict (``imageData`` is None: LabelMe reads the image from ``imagePath``).
    """
    if int(img_h) <= 0 or int(img_w) <= 0:
        raise ArgumentError(f"img_h and img_w must be positive, got {img_h}x{img_w}")
    if json_dir is None:
        rel = Path(image_path).name
    else:
        rel = Path(os.path.relpath(image_path, json_dir)).as_posix()
    out_shapes: list[dict[str, Any]] = []
    next_group = 1
    for index, item in enumerate(shapes):
        if not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str)):
            raise ArgumentError(f"shapes[{index}] must be a (label, polygons) tuple, got {item!r}")
        label, polys = item
        pts_list = []
        for poly in polys:
            pts = np.asarray(poly, dtype=np.float64)
            if pts.ndim != 2 or pts.shape[1] != 2:
                raise ArgumentError(
                    f"shapes[{index}] polygons must be (K, 2) arrays, got {pts.shape}"
                )
            if len(pts) >= 3:
                pts_list.append(pts)
        group: int | None = None
        if len(pts_list) > 1:
            group, next_group = next_group, next_group + 1
        out_shapes.extend(
            {
                "label": label,
                "points": pts.tolist(),
                "group_id": group,
                "description": "",
                "shape_type": "polygon",
                "flags": {},
            }
            for pts in pts_list
        )
    return {
        "version": LABELME_VERSION,
        "flags": {},
        "shapes": out_shapes,
        "imagePath": rel,
        "imageData": None,
        "imageHeight": int(img_h),
        "imageWidth": int(img_w),
    }


def write_labelme(path: str | os.PathLike[str], record: dict[str, Any]) -> Path:
    """Write a LabelMe record (see :func:`labelme_record`) as indented JSON, atomically."""
    missing = [k for k in _REQUIRED if k not in record]
    if missing:
        raise ArgumentError(f"record is missing LabelMe keys {missing} (see labelme_record)")
    return atomic_write_text(path, json.dumps(record, indent=2, ensure_ascii=False) + "\n")


def read_labelme(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a LabelMe JSON file, checking the keys samkit relies on.

    Raises:
        FormatError: not JSON, not an object, or without the keys of :func:`labelme_record`.
    """
    p = Path(path)
    try:
        record = json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise FormatError(f"{p}: not valid JSON ({e})") from None
    if not isinstance(record, dict):
        raise FormatError(f"{p}: a LabelMe file holds a JSON object")
    missing = [k for k in _REQUIRED if k not in record]
    if missing:
        raise FormatError(f"{p}: missing LabelMe keys {missing}")
    return record


def labelme_objects(
    record: dict[str, Any], where: str
) -> tuple[list[tuple[str, str, list[np.ndarray]]], list[tuple[str, str]]]:
    """The objects of a LabelMe record: shapes sharing a ``group_id`` (and label) form one
    object, every other shape is an object of its own.

    Returns ``(objects, problems)``: objects as ``(object_id, label, polygons)`` with polygons
    ``(K, 2)`` float64 pixel ``(x, y)`` in the ``"centers"`` frame (a ``rectangle`` shape
    becomes its 4 corners); problems as ``("<where>:shapes[i]", reason)`` for shapes that are
    skipped (fewer than 3 polygon points, points outside the image, another shape type).
    """
    h, w = int(record["imageHeight"]), int(record["imageWidth"])
    objects: dict[str, tuple[str, list[np.ndarray]]] = {}
    problems: list[tuple[str, str]] = []
    for i, shape in enumerate(record.get("shapes") or []):
        spot = f"{where}:shapes[{i}]"
        kind = shape.get("shape_type") or "polygon"
        try:
            pts = np.asarray(shape.get("points", []), dtype=np.float64).reshape(-1, 2)
        except ValueError:
            problems.append((spot, "points are not [x, y] pairs"))
            continue
        if kind == "rectangle" and len(pts) == 2:
            (x1, y1), (x2, y2) = pts.min(axis=0), pts.max(axis=0)
            pts = np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2]])
        elif kind != "polygon":
            problems.append((spot, f"shape_type {kind!r} is not supported (polygon, rectangle)"))
            continue
        if len(pts) < 3:
            problems.append((spot, f"polygon with {len(pts)} points (needs >= 3)"))
            continue
        if not np.isfinite(pts).all() or pts.min() < -1 or (pts.max(axis=0) > [w, h]).any():
            problems.append((spot, f"points outside the {w}x{h} image"))
            continue
        label = str(shape.get("label", ""))
        group = shape.get("group_id")
        key = f"{i}" if group is None else f"g{group}:{label}"
        objects.setdefault(key, (label, []))[1].append(pts)
    return [(key, label, polys) for key, (label, polys) in objects.items()], problems
