"""Writers for one :class:`~samkit.results.Results`: YOLO-seg lines, COCO-style records and the
JSON summary that ``Results.save_txt`` / ``coco_records`` / ``to_json`` return.

Everything works per mask from whichever storage the Results holds (dense stack or RLEs), so
a large segment-everything result is never expanded to (N, H, W).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

# a samkit.results.Results (not imported: results.py imports this module)
Results = Any

__all__ = ["coco_records", "results_summary", "save_yolo", "to_json", "yolo_lines"]


def yolo_lines(results: Results) -> list[str]:
    """YOLO-seg lines ``class x1 y1 ...`` normalised, one per polygon part."""
    from samkit.formats.yolo import format_yolo_lines

    h, w = results.orig_shape
    return format_yolo_lines(results.xy, results.cls, w, h)


def save_yolo(results: Results, path: str | os.PathLike[str]) -> Path:
    """Write :func:`yolo_lines` to ``path`` atomically (an empty file when there are no masks)."""
    from samkit.formats.yolo import write_yolo

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return write_yolo(path, yolo_lines(results))


def _segmentation(results: Results, i: int) -> dict[str, Any]:
    from samkit.masks import coco_rle, rle_to_coco_string

    if results.rles is not None:
        rle = results.rles[i]
        return {"size": list(rle["size"]), "counts": rle_to_coco_string(rle["counts"])}
    return coco_rle(results.mask(i))


def coco_records(results: Results, image_id: int | str | None = None) -> list[dict[str, Any]]:
    """One COCO-style record per mask.

    Fields: ``segmentation`` compressed RLE ``{"size": [H, W], "counts": str}`` (holes kept),
    ``area`` (pixels), ``bbox`` COCO XYWH with exclusive extent (a one-pixel mask at (x, y) is
    ``[x, y, 1, 1]``, as ``pycocotools.mask.toBbox``), ``score``, ``category_id`` (the class
    id), ``object_id`` and, when given, ``image_id``; segment everything adds
    ``stability_score``.
    """
    records = []
    boxes, areas = results.xyxy, results.areas
    for i in range(len(results)):
        x1, y1, x2, y2 = (int(v) for v in boxes[i])
        empty = areas[i] == 0
        rec: dict[str, Any] = {
            "segmentation": _segmentation(results, i),
            "area": int(areas[i]),
            "bbox": [0, 0, 0, 0] if empty else [x1, y1, x2 - x1 + 1, y2 - y1 + 1],
            "score": float(results.scores[i]),
            "category_id": int(results.cls[i]),
            "object_id": int(results.object_ids[i]),
        }
        if results.stability_scores is not None:
            rec["stability_score"] = float(results.stability_scores[i])
        if image_id is not None:
            rec["image_id"] = image_id
        records.append(rec)
    return records


def results_summary(results: Results) -> dict[str, Any]:
    """A JSON-ready dict: path, frame, image size, speed and :func:`coco_records`."""
    h, w = results.orig_shape
    return {
        "path": results.path,
        "frame": results.frame,
        "height": h,
        "width": w,
        "speed_ms": {k: round(v, 2) for k, v in results.speed.items()},
        "objects": coco_records(results),
    }


def to_json(results: Results, indent: int | None = None) -> str:
    """:func:`results_summary` as a JSON string."""
    return json.dumps(results_summary(results), indent=indent)
