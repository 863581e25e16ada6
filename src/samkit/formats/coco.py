"""COCO instances JSON: a writer for masks (the readers, for box annotations and checked
instance masks, are in :mod:`samkit.formats.coco_read` and importable from here too).

Segmentations are written either as compressed RLE (``{"size": [h, w], "counts": str}``,
lossless, holes included) or as polygons (a flat ``[x1, y1, x2, y2, ...]`` list per part; no
holes). COCO polygons live in a continuous frame where pixel ``(r, c)`` covers
``[c, c + 1] x [r, r + 1]`` and pycocotools sets the pixels whose centre lies inside the polygon,
so polygons are traced along the pixel edges (``frame="edges"`` of
:func:`samkit.polygons.mask_to_polygons`, vertices on integer pixel corners): read back with
``annToMask`` they give the mask exactly, holes filled in (with ``tolerance`` 0).
``pycocotools.coco.COCO.annToRLE`` uses a dict segmentation as RLE whatever ``iscrowd`` says, so
``annToMask`` reproduces RLE masks exactly even with the default ``iscrowd = 0``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from samkit.errors import ArgumentError
from samkit.formats.coco_read import (  # re-exported: the readers' old home
    CocoAnnotation,
    CocoImage,
    CocoInstances,
    coco_segmentation_to_mask,
    read_coco_boxes,
    read_coco_instances,
)
from samkit.io_utils import atomic_write_text
from samkit.masks import coco_rle, mask_to_box
from samkit.polygons import PolygonMode, mask_to_polygons

__all__ = [
    "CocoAnnotation",
    "CocoImage",
    "CocoInstances",
    "CocoWriter",
    "coco_segmentation_to_mask",
    "read_coco_boxes",
    "read_coco_instances",
]

SegmentationKind = Literal["rle", "polygon"]


class CocoWriter:
    """Accumulate images, categories and mask annotations; write one instances JSON.

    Args:
        categories: ``{category_id: name}``, or a list of names which get ids ``1..n`` (COCO
            numbers categories from 1).
        segmentation: ``"rle"`` (default, lossless) or ``"polygon"``.
        tolerance: Douglas-Peucker tolerance in pixels for polygons (0 = every contour vertex:
            with ``polygon_mode="all"`` pycocotools then reads back the mask exactly, holes
            filled in).
        polygon_mode: how a multi-part mask becomes polygons (see
            :func:`samkit.polygons.mask_to_polygons`): ``"all"`` (default, one polygon per part
            in the annotation's list), ``"largest"`` or ``"merge"``.

    ``bbox`` is COCO XYWH in pixels with exclusive extent (a single pixel at ``(x, y)`` is
    ``[x, y, 1, 1]``, as ``pycocotools.mask.toBbox``); ``area`` is the mask's pixel count.
    """

    def __init__(
        self,
        categories: Mapping[int, str] | Sequence[str],
        *,
        segmentation: SegmentationKind = "rle",
        tolerance: float = 0.0,
        polygon_mode: PolygonMode = "all",
    ) -> None:
        if segmentation not in ("rle", "polygon"):
            raise ArgumentError(f"segmentation must be 'rle' or 'polygon', got {segmentation!r}")
        if polygon_mode not in ("all", "largest", "merge"):
            raise ArgumentError(
                f"polygon_mode must be 'all', 'largest' or 'merge', got {polygon_mode!r}"
            )
        self.polygon_mode: PolygonMode = polygon_mode
        if isinstance(categories, Mapping):
            table = dict(categories)
        elif isinstance(categories, (str, bytes)) or not isinstance(categories, Sequence):
            raise ArgumentError(
                f"categories must be a dict id -> name or a list of names, got {categories!r}"
            )
        else:
            table = {i + 1: name for i, name in enumerate(categories)}
        for cid, name in table.items():
            if isinstance(cid, bool) or not isinstance(cid, int) or not isinstance(name, str):
                raise ArgumentError(
                    f"categories must map int ids to str names, got {cid!r}: {name!r}"
                )
        self.segmentation: SegmentationKind = segmentation
        self.tolerance = float(tolerance)
        self.categories: dict[int, str] = table
        self.images: list[dict[str, Any]] = []
        self.annotations: list[dict[str, Any]] = []
        self._image_sizes: dict[int, tuple[int, int]] = {}

    def add_image(
        self, file_name: str, height: int, width: int, *, image_id: int | None = None
    ) -> int:
        """Register an image (``file_name`` relative to the image root); returns its id
        (``1, 2, ...`` unless given)."""
        if int(height) <= 0 or int(width) <= 0:
            raise ArgumentError(f"height and width must be positive, got {height}x{width}")
        iid = len(self.images) + 1 if image_id is None else int(image_id)
        if iid in self._image_sizes:
            raise ArgumentError(f"image_id {iid} is already registered (give a new id or None)")
        self._image_sizes[iid] = (int(height), int(width))
        self.images.append(
            {"id": iid, "file_name": str(file_name), "height": int(height), "width": int(width)}
        )
        return iid

    def add_annotation(
        self,
        image_id: int,
        category_id: int,
        mask: np.ndarray,
        *,
        score: float | None = None,
        iscrowd: int = 0,
    ) -> int | None:
        """Add one object's mask ``(H, W)`` (bool) on a registered image; returns the annotation
        id, or None when nothing could be written (an empty mask)."""
        if image_id not in self._image_sizes:
            raise ArgumentError(f"image_id {image_id!r} was not added with add_image")
        if category_id not in self.categories:
            raise ArgumentError(
                f"category_id {category_id!r} is not one of {sorted(self.categories)}"
            )
        arr = np.asarray(mask)
        if arr.shape != self._image_sizes[image_id]:
            raise ArgumentError(
                f"mask has shape {arr.shape} but image {image_id} is {self._image_sizes[image_id]}"
            )
        arr = arr.astype(bool, copy=False)
        area = int(arr.sum())
        if area == 0:
            return None
        segmentation: Any
        if self.segmentation == "rle":
            segmentation = coco_rle(arr)
        else:
            polys = mask_to_polygons(
                arr, mode=self.polygon_mode, tolerance=self.tolerance, frame="edges"
            )
            segmentation = [p.reshape(-1).tolist() for p in polys if len(p) >= 3]
            if not segmentation:
                return None
        x1, y1, x2, y2 = mask_to_box(arr).tolist()
        ann: dict[str, Any] = {
            "id": len(self.annotations) + 1,
            "image_id": image_id,
            "category_id": category_id,
            "segmentation": segmentation,
            "area": area,
            "bbox": [x1, y1, x2 - x1 + 1, y2 - y1 + 1],
            "iscrowd": int(iscrowd),
        }
        if score is not None:
            ann["score"] = float(score)
        self.annotations.append(ann)
        return int(ann["id"])

    def to_dict(self) -> dict[str, Any]:
        """The instances dataset as a JSON-ready dict."""
        return {
            "info": {"description": "written by samkit"},
            "licenses": [],
            "images": list(self.images),
            "annotations": list(self.annotations),
            "categories": [
                {"id": cid, "name": name, "supercategory": ""}
                for cid, name in sorted(self.categories.items())
            ],
        }

    def write(self, path: str | os.PathLike[str]) -> Path:
        """Write the instances JSON atomically."""
        return atomic_write_text(path, json.dumps(self.to_dict()))
