"""Label files the annotator finds at start, and what of them it must keep when it saves.

Objects (``{"label", "rle"}``) come from the first readable of: samkit's own
``.coco_parts/<rel>.json``, a LabelMe JSON or a YOLO-seg txt in the output folder, a LabelMe
JSON beside the image. A file in the output folder that exists but cannot be read makes the
image *blocked*: saving it would overwrite labels samkit could not read, so it is refused until
the file is fixed or moved (:attr:`Existing.blocked`).

The annotator owns only the polygon shapes of a LabelMe file (they become masks). Everything
else, kept in :class:`LabelmeExtras`, is written back on every save: other shapes (rectangles,
points, lines, circles, ...), the file's fields (``flags``, custom keys) and the extra fields
of a polygon shape (``description``, ``flags``, custom keys), given back to the saved object
whose mask matches it (same label, IoU >= 0.9).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from samkit.formats import read_labelme, read_yolo_seg
from samkit.masks import coco_rle, rle_to_mask
from samkit.polygons import polygons_to_mask

__all__ = ["Existing", "LabelmeExtras", "load_existing", "merge_labelme", "resize_mask"]

Object = dict[str, Any]
# Fields of a LabelMe file / shape that a save writes itself.
_RECORD_OWNED = ("version", "shapes", "imagePath", "imageHeight", "imageWidth")
_SHAPE_OWNED = ("label", "points", "group_id", "shape_type")
_SHAPE_DEFAULTS: dict[str, Any] = {"description": "", "flags": {}, "mask": None}


@dataclass
class LabelmeExtras:
    """What a save of a LabelMe file keeps: ``fields`` of the file, ``shapes`` the annotator
    does not own, and ``polygon_fields``: ``(label, mask (H, W) bool, fields)`` per polygon
    object whose shapes carried fields of their own."""

    fields: dict[str, Any] = field(default_factory=dict)
    shapes: list[dict[str, Any]] = field(default_factory=list)
    polygon_fields: list[tuple[str, np.ndarray, dict[str, Any]]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.fields or self.shapes or self.polygon_fields)


@dataclass
class Existing:
    """What was found for one image: its objects (None: no label file), problems to report,
    ``blocked`` (why the image may not be saved, or None) and the LabelMe extras."""

    objects: list[Object] | None = None
    problems: list[str] = field(default_factory=list)
    blocked: str | None = None
    extras: LabelmeExtras = field(default_factory=LabelmeExtras)


def load_existing(
    rel: str, image_path: Path, size: tuple[int, int], output_dir: Path,
    class_name: Callable[[int], str], written: Sequence[str],
) -> Existing:  # fmt: skip
    """Read the label files of the image ``rel`` (``size`` = (height, width));
    ``class_name(i)`` names YOLO / COCO class ``i``; ``written``: the formats a save writes."""
    r = PurePosixPath(rel)
    found = Existing()
    candidates = [
        ("coco", output_dir / ".coco_parts" / f"{r}.json", _read_part),
        ("labelme", output_dir / r.with_suffix(".json"), _read_labelme),
        ("yolo", output_dir / r.with_suffix(".txt"), _read_yolo),
        ("beside", image_path.with_suffix(".json"), _read_labelme),
    ]
    for fmt, path, reader in candidates:
        if not path.is_file():
            continue
        try:
            if found.objects is None:
                found.objects = reader(path, size, class_name)
            else:  # the other files only need to be readable (cheaper than rasterizing)
                _PARSERS[fmt](path)
            if fmt in ("labelme", "beside") and not found.extras:
                found.extras = _labelme_extras(path, size)
        except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
            what = str(exc) if str(path) in str(exc) else f"{path}: {exc}"
            found.problems.append(what)
            if fmt in written and found.blocked is None:
                found.blocked = (
                    f"a label file could not be read at start ({what}); samkit does not "
                    "overwrite label files it could not read: fix or move the file and restart"
                )
    return found


def _parse_part(path: Path) -> None:
    part = json.loads(path.read_text(encoding="utf-8"))
    for ann in part["annotations"]:
        int(ann["category_id"]), ann["segmentation"]


def _parse_labelme(path: Path) -> None:
    record = read_labelme(path)
    for indices in (g[1] for g in _polygon_groups(record).values()):
        for i in indices:
            np.asarray(record["shapes"][i]["points"], float).reshape(-1, 2)


_PARSERS: dict[str, Callable[[Path], Any]] = {
    "coco": _parse_part, "labelme": _parse_labelme, "yolo": read_yolo_seg, "beside": _parse_labelme,
}  # fmt: skip


def _read_part(path: Path, size: tuple[int, int], name: Callable[[int], str]) -> list[Object]:
    part = json.loads(path.read_text(encoding="utf-8"))
    out = []
    for ann in part["annotations"]:
        seg = ann["segmentation"]
        if isinstance(seg, dict):
            mask = rle_to_mask(seg)
        else:
            polys = [np.asarray(p, float).reshape(-1, 2) for p in seg]
            mask = polygons_to_mask(polys, size[0], size[1], frame="edges")
        if mask.shape != size:  # the image was replaced by one of another size
            mask = resize_mask(mask, *size)
        obj: Object = {"label": name(int(ann["category_id"]) - 1), "rle": coco_rle(mask)}
        if int(ann.get("iscrowd", 0) or 0):
            obj["crowd"] = True
        out.append(obj)
    return out


def resize_mask(mask: np.ndarray, height: int, width: int) -> np.ndarray:
    """A (H, W) bool mask resized to (height, width), nearest neighbour."""
    import cv2

    return cv2.resize(mask.astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST) > 0


def _polygon_groups(record: dict[str, Any]) -> dict[Any, tuple[str, list[int]]]:
    """Polygon shapes by object: ``{key: (label, [shape indices])}`` (a shared group_id is
    one object)."""
    groups: dict[Any, tuple[str, list[int]]] = {}
    for i, shape in enumerate(record["shapes"]):
        if (shape.get("shape_type") or "polygon") != "polygon":
            continue
        key = ("g", shape["group_id"]) if shape.get("group_id") is not None else ("s", i)
        groups.setdefault(key, (str(shape["label"]), []))[1].append(i)
    return groups


def _group_mask(record: dict[str, Any], indices: Iterable[int], size: tuple[int, int]) -> Any:
    polys = [np.asarray(record["shapes"][i]["points"], float).reshape(-1, 2) for i in indices]
    return polygons_to_mask(polys, size[0], size[1])


def _read_labelme(path: Path, size: tuple[int, int], name: Callable[[int], str]) -> list[Object]:
    record = read_labelme(path)
    out = []
    for label, indices in _polygon_groups(record).values():
        mask = _group_mask(record, indices, size)
        if mask.any():
            out.append({"label": label, "rle": coco_rle(mask)})
    return out


def _read_yolo(path: Path, size: tuple[int, int], name: Callable[[int], str]) -> list[Object]:
    scale = np.array([size[1], size[0]], float)
    out = []
    for c, pts in read_yolo_seg(path):
        mask = polygons_to_mask([pts * scale], size[0], size[1])
        if mask.any():
            out.append({"label": name(c), "rle": coco_rle(mask)})
    return out


def _labelme_extras(path: Path, size: tuple[int, int]) -> LabelmeExtras:
    record = read_labelme(path)
    extras = LabelmeExtras(fields={k: v for k, v in record.items() if k not in _RECORD_OWNED})
    if extras.fields.get("flags") == {}:
        del extras.fields["flags"]
    if extras.fields.get("imageData", 0) is None:
        del extras.fields["imageData"]
    extras.shapes = [s for s in record["shapes"] if (s.get("shape_type") or "polygon") != "polygon"]
    for label, indices in _polygon_groups(record).values():
        own = {k: v for i in indices for k, v in record["shapes"][i].items()
               if k not in _SHAPE_OWNED and _SHAPE_DEFAULTS.get(k, object()) != v}  # fmt: skip
        if own:
            extras.polygon_fields.append((label, _group_mask(record, indices, size), own))
    return extras


def merge_labelme(
    record: dict[str, Any],
    extras: LabelmeExtras,
    objects: Sequence[tuple[str, np.ndarray]],
    shape_counts: Sequence[int],
) -> dict[str, Any]:
    """``record`` (a fresh LabelMe record of ``objects`` whose shapes come in object order,
    ``shape_counts[i]`` of them for object ``i``) with ``extras`` put back."""
    out = {**record, **extras.fields}  # the file's own flags, imageData, custom keys
    shapes = [dict(s) for s in record["shapes"]]
    start = 0
    for (label, mask), count in zip(objects, shape_counts, strict=True):
        own = _matching_fields(extras, label, mask)
        for shape in shapes[start : start + count]:
            shape.update(own)
        start += count
    out["shapes"] = shapes + [dict(s) for s in extras.shapes]
    return out


def _matching_fields(extras: LabelmeExtras, label: str, mask: np.ndarray) -> dict[str, Any]:
    for name, old, own in extras.polygon_fields:
        if name != label or old.shape != mask.shape:
            continue
        inter = np.logical_and(old, mask).sum()
        union = np.logical_or(old, mask).sum()
        if union and inter / union >= 0.9:
            return own
    return {}
