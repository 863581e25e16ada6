"""A COCO instances JSON as the annotator's starting labels.

Each annotation (polygons, or RLE with compressed or uncompressed counts) becomes an object
``{"label": category name, "rle": ...}``; ``iscrowd: 1`` ones keep ``"crowd": True``, which the
page shows and a save writes back as ``iscrowd`` in the image's COCO part. Images are matched by
``file_name``: the image's path under the folder, else its file name when only one image has it.
An image that already has label files keeps them (nothing is overwritten or merged); the
annotations that cannot be used are reported, not fatal.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from samkit.errors import FormatError
from samkit.formats.coco_read import coco_segmentation_to_mask
from samkit.masks import coco_rle

__all__ = ["CocoImport", "read_coco_objects"]


@dataclass
class CocoImport:
    """What a COCO file gave: ``objects`` per image path (``rel``), ``problems`` (where, why)
    and ``unmatched`` file names of the JSON that no image of the folder has."""

    objects: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    unmatched: list[str] = field(default_factory=list)


def _load(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FormatError(f"import_coco: cannot read {path} ({exc})") from None
    if not isinstance(data, dict) or not all(
        isinstance(data.get(k), list) for k in ("images", "annotations")
    ):
        raise FormatError(f"import_coco: {path} is not a COCO instances JSON ('images' and "
                          "'annotations' lists)")  # fmt: skip
    return data


def _match(rels: list[str]) -> dict[str, str]:
    """COCO file_name -> rel: every rel, and every file name that only one image has."""
    table = {rel: rel for rel in rels}
    names: dict[str, list[str]] = {}
    for rel in rels:
        names.setdefault(PurePosixPath(rel).name, []).append(rel)
    for name, owners in names.items():
        if len(owners) == 1:
            table.setdefault(name, owners[0])
    return table


def read_coco_objects(
    json_path: str | os.PathLike[str], sizes: dict[str, tuple[int, int]]
) -> CocoImport:
    """Objects of ``json_path`` for the images ``sizes`` (rel -> (height, width))."""
    path = Path(json_path)
    data = _load(path)
    cats = {}
    for c in data.get("categories") or []:
        if isinstance(c, dict) and "id" in c:
            cats[int(c["id"])] = str(c.get("name", c["id"]))
    table = _match(list(sizes))
    out = CocoImport()
    images: dict[int, str] = {}
    for k, img in enumerate(data["images"]):
        try:
            name, iid = str(img["file_name"]), int(img["id"])
        except (KeyError, TypeError, ValueError):
            out.problems.append(f"{path}: images[{k}] needs id and file_name")
            continue
        rel = table.get(name) or table.get(PurePosixPath(name.replace("\\", "/")).name)
        if rel is None:
            out.unmatched.append(name)
        else:
            images[iid] = rel
            out.objects.setdefault(rel, [])
    for k, ann in enumerate(data["annotations"]):
        where = f"{path}: annotation {ann.get('id', k) if isinstance(ann, dict) else k}"
        try:
            rel = images.get(int(ann["image_id"]))
            if rel is None:
                continue  # an image of the JSON that is not in the folder (or a bad entry)
            cid = int(ann.get("category_id", 0))
            mask = coco_segmentation_to_mask(ann.get("segmentation"), *sizes[rel])
        except (KeyError, TypeError, ValueError) as exc:
            out.problems.append(f"{where}: {exc}")
            continue
        if not mask.any():
            out.problems.append(f"{where}: the mask is empty")
            continue
        obj: dict[str, Any] = {"label": cats.get(cid, f"class{cid}"), "rle": coco_rle(mask)}
        if int(ann.get("iscrowd", 0) or 0):
            obj["crowd"] = True
        out.objects[rel].append(obj)
    return out
