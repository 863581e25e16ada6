"""COCO instances JSON readers: box annotations for auto-annotation (:func:`read_coco_boxes`)
and checked instance masks for datasets and evaluation (:func:`read_coco_instances`); every
malformed entry is a :class:`~samkit.errors.FormatError` naming the file and the entry."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from samkit.errors import FormatError
from samkit.masks import rle_to_mask
from samkit.polygons import polygons_to_mask

__all__ = [
    "CocoAnnotation",
    "CocoImage",
    "CocoInstances",
    "coco_segmentation_to_mask",
    "read_coco_boxes",
    "read_coco_instances",
]


def read_coco_boxes(
    json_path: str | os.PathLike[str],
) -> dict[str, list[tuple[int, str, tuple[float, float, float, float]]]]:
    """Box annotations of a COCO instances JSON, per image ``file_name``.

    Returns ``{file_name: [(category_id, category_name, (x1, y1, x2, y2)), ...]}`` with boxes
    XYXY in pixels (``x2 = x + w``); every image appears, those without annotations with ``[]``.
    Annotations without a ``bbox`` are skipped.

    Raises:
        FormatError: the file is not a COCO instances JSON, or an entry is malformed (the
            message names the file and the entry).
    """
    path = Path(json_path)
    data = _load_instances(path)
    names = _categories(data, path)
    files: dict[int, str] = {}
    out: dict[str, list[tuple[int, str, tuple[float, float, float, float]]]] = {}
    for k, img in enumerate(data["images"]):
        try:
            iid, file_name = int(img["id"]), str(img["file_name"])
        except (KeyError, TypeError, ValueError):
            raise FormatError(
                f"{path}: images[{k}] needs an integer 'id' and a 'file_name'"
            ) from None
        files[iid] = file_name
        out.setdefault(file_name, [])
    for k, ann in enumerate(data["annotations"]):
        found = _coco_box(ann, files, f"{path}: annotation {_ann_id(ann, k)!r}")
        if found is not None:
            file_name, cid, box = found
            out[file_name].append((cid, names.get(cid, str(cid)), box))
    return out


def _load_instances(path: Path) -> dict[str, Any]:
    """The parsed JSON of a COCO instances file; FormatError when it is not one."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise FormatError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(data, dict) or not all(
        isinstance(data.get(k), list) for k in ("images", "annotations")
    ):
        raise FormatError(f"{path}: a COCO instances JSON needs 'images' and 'annotations' lists")
    return data


def _categories(data: dict[str, Any], path: Path) -> dict[int, str]:
    """Category names by id of a parsed COCO instances JSON."""
    try:
        return {int(c["id"]): str(c.get("name", c["id"])) for c in data.get("categories") or []}
    except (KeyError, TypeError, ValueError, AttributeError):
        raise FormatError(f"{path}: every 'categories' entry needs an integer 'id'") from None


def _ann_id(ann: Any, index: int) -> Any:
    return ann.get("id", index) if isinstance(ann, dict) else index


def _coco_box(
    ann: Any, files: dict[int, str], where: str
) -> tuple[str, int, tuple[float, float, float, float]] | None:
    """``(file_name, category_id, XYXY box)`` of a box annotation, None without a ``bbox``."""
    if not isinstance(ann, dict):
        raise FormatError(f"{where} is not a JSON object")
    bbox = ann.get("bbox")
    if bbox is None:
        return None
    if not isinstance(bbox, list) or len(bbox) != 4:
        raise FormatError(f"{where} has bbox {bbox!r}, expected [x, y, w, h]")
    try:
        image_id, cid = int(ann["image_id"]), int(ann["category_id"])
        x, y, w, h = (float(v) for v in bbox)
    except (KeyError, TypeError, ValueError):
        raise FormatError(
            f"{where} needs an integer 'image_id' and 'category_id' and a numeric bbox"
        ) from None
    if image_id not in files:
        raise FormatError(f"{where} refers to unknown image {image_id}")
    return files[image_id], cid, (x, y, x + w, y + h)


# ------------------------------------------------------------------------------------ reading
@dataclass(frozen=True)
class CocoAnnotation:
    """One usable annotation of a COCO instances JSON, not yet rasterised.

    ``segmentation`` is the JSON value (a list of flat polygons in the ``"edges"`` frame, or an
    RLE dict, compressed or not); ``bbox`` the annotation's box converted to XYXY pixels
    (``x2 = x + w``), or None when absent.
    """

    ann_id: int
    category: str
    segmentation: Any
    bbox: tuple[float, float, float, float] | None


@dataclass(frozen=True)
class CocoImage:
    """One image of a COCO instances JSON with its usable annotations."""

    image_id: int
    file_name: str
    height: int
    width: int
    annotations: tuple[CocoAnnotation, ...]


@dataclass
class CocoInstances:
    """What :func:`read_coco_instances` found: images (in file order), category names (by
    id), the number of crowd annotations skipped, and ``problems`` as ``(where, message)``
    for every annotation or image entry that could not be used (it is skipped)."""

    images: list[CocoImage]
    categories: dict[int, str]
    crowd: int = 0
    problems: list[tuple[str, str]] = field(default_factory=list)


def _check_segmentation(seg: Any, height: int, width: int) -> str | None:
    """Why a COCO segmentation cannot be rasterised on a ``height x width`` image, or None."""
    if isinstance(seg, dict):
        size = seg.get("size")
        if "counts" not in seg or not isinstance(size, list) or len(size) != 2:
            return "RLE segmentation needs 'size' [h, w] and 'counts'"
        if [int(size[0]), int(size[1])] != [height, width]:
            return f"RLE size {size} does not match the image's {height}x{width}"
        return None
    if not isinstance(seg, list) or not seg:
        return "segmentation must be a list of polygons or an RLE dict"
    for poly in seg:
        if not isinstance(poly, list) or len(poly) % 2 or len(poly) < 6:
            n = len(poly) if isinstance(poly, list) else 0
            return f"polygon with {n} values (a polygon needs >= 3 x, y points)"
        xy = np.asarray(poly, dtype=np.float64).reshape(-1, 2)
        if not np.isfinite(xy).all():
            return "polygon with non-finite coordinates"
        lo, hi = xy.min(axis=0), xy.max(axis=0)
        if lo[0] < -1 or lo[1] < -1 or hi[0] > width + 1 or hi[1] > height + 1:
            return f"polygon reaches outside the {width}x{height} image"
    return None


def coco_segmentation_to_mask(seg: Any, height: int, width: int) -> np.ndarray:
    """Rasterise a COCO segmentation into a ``(height, width)`` bool mask, as pycocotools'
    ``annToMask`` does (polygons: pixels whose centre lies inside, parts OR-ed; RLE exact).

    Raises:
        FormatError: the segmentation is malformed (see :func:`read_coco_instances`).
    """
    problem = _check_segmentation(seg, height, width)
    if problem is not None:
        raise FormatError(problem)
    if isinstance(seg, dict):
        return rle_to_mask(seg)
    polys = [np.asarray(p, dtype=np.float64).reshape(-1, 2) for p in seg]
    return polygons_to_mask(polys, height, width, frame="edges")


def _coco_image(img: Any, where: str) -> tuple[int, str, int, int]:
    try:
        iid, name = int(img["id"]), str(img["file_name"])
        h, w = int(img["height"]), int(img["width"])
    except (KeyError, TypeError, ValueError):
        raise FormatError(f"{where}: image entry needs id, file_name, height, width") from None
    if h <= 0 or w <= 0:
        raise FormatError(f"{where}: image {iid} has size {h}x{w}")
    return iid, name, h, w


def _coco_annotation(
    ann: Any, sizes: dict[int, tuple[int, int]], names: dict[int, str]
) -> CocoAnnotation:
    """A checked annotation; FormatError with the reason when it cannot be used."""
    if not isinstance(ann, dict) or "image_id" not in ann:
        raise FormatError("annotation without image_id")
    iid = int(ann["image_id"])
    if iid not in sizes:
        raise FormatError(f"refers to unknown image {iid}")
    cid = int(ann.get("category_id", 0))
    seg = ann.get("segmentation")
    if seg is None:
        raise FormatError("has no segmentation")
    problem = _check_segmentation(seg, *sizes[iid])
    if problem is not None:
        raise FormatError(problem)
    bbox = ann.get("bbox")
    box = None
    if bbox is not None:
        if len(bbox) != 4:
            raise FormatError(f"bbox {bbox!r} is not [x, y, w, h]")
        x, y, w, h = (float(v) for v in bbox)
        box = (x, y, x + w, y + h)
    return CocoAnnotation(int(ann.get("id", -1)), names.get(cid, str(cid)), seg, box)


def read_coco_instances(json_path: str | os.PathLike[str]) -> CocoInstances:
    """Read a COCO instances JSON for evaluation, checking every entry.

    Crowd annotations (``iscrowd: 1``) are skipped and counted. Annotations that cannot be used
    -- unknown image, no segmentation, a polygon with fewer than 3 points or reaching outside
    the image, an RLE of another size, a malformed bbox -- are skipped and listed in
    ``problems`` as ``("<json>:annotation <id>", reason)``; so are images with a bad entry or a
    repeated id. Only a file that is not a COCO instances JSON at all raises
    :class:`~samkit.errors.FormatError` (a ``ValueError``).
    """
    path = Path(json_path)
    data = _load_instances(path)
    names = _categories(data, path)
    out = CocoInstances([], names)
    order: list[tuple[int, str, int, int]] = []
    sizes: dict[int, tuple[int, int]] = {}
    for k, img in enumerate(data["images"]):
        try:
            iid, name, h, w = _coco_image(img, f"{path}:images[{k}]")
        except ValueError as e:
            out.problems.append((f"{path}:images[{k}]", str(e).split(": ", 1)[-1]))
            continue
        if iid in sizes:
            out.problems.append((f"{path}:images[{k}]", f"repeated image id {iid}"))
            continue
        sizes[iid] = (h, w)
        order.append((iid, name, h, w))
    per_image: dict[int, list[CocoAnnotation]] = {iid: [] for iid in sizes}
    for k, ann in enumerate(data["annotations"]):
        where = f"{path}:annotation {_ann_id(ann, k)}"
        if isinstance(ann, dict) and int(ann.get("iscrowd", 0) or 0):
            out.crowd += 1
            continue
        try:
            parsed = _coco_annotation(ann, sizes, names)
        except (ValueError, TypeError) as e:
            out.problems.append((where, str(e)))
            continue
        per_image[int(ann["image_id"])].append(parsed)
    out.images = [CocoImage(iid, name, h, w, tuple(per_image[iid])) for iid, name, h, w in order]
    return out
