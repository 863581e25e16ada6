"""Kept masks as columns, their conversion to Meta-style records, and small-region cleanup."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from samkit.amg.nms import batched_nms_numpy
from samkit.masks import (
    area_from_rle,
    box_xyxy_to_xywh,
    mask_to_box,
    mask_to_rle,
    remove_small_regions,
    rle_to_coco_string,
    rle_to_mask,
)

if TYPE_CHECKING:
    pass

__all__ = ["Candidates", "postprocess_small_regions", "to_records"]


@dataclass
class Candidates:
    """Masks of one image (or crop) in columns; row i of every field is mask i.

    rles: uncompressed COCO RLEs. boxes: ``(N, 4)`` int64 XYXY, inclusive max. iou_preds,
    stability: ``(N,)`` float32. points: ``(N, 2)`` float64 ``(x, y)`` prompt of each mask.
    crop_boxes: ``(N, 4)`` int64 XYXY crop each mask came from (filled once uncropped).
    low_res: ``(N, s', s')`` low-res logits (a torch tensor on the low-res filter path, a
    float32 NumPy array on the exact path), kept only while masks still need upsampling.
    Frames are the crop's until the crop is finished, the original image's after.
    """

    rles: list[dict[str, Any]] = field(default_factory=list)
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), dtype=np.int64))
    iou_preds: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float32))
    stability: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float32))
    points: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), dtype=np.float64))
    crop_boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), dtype=np.int64))
    low_res: Any = None

    def __len__(self) -> int:
        return len(self.iou_preds)

    def take(self, idx: np.ndarray) -> Candidates:
        """Rows ``idx`` (int indices, in that order)."""
        idx = np.asarray(idx, dtype=np.int64)
        return Candidates(
            rles=[self.rles[i] for i in idx] if self.rles else [],
            boxes=self.boxes[idx],
            iou_preds=self.iou_preds[idx],
            stability=self.stability[idx],
            points=self.points[idx],
            crop_boxes=self.crop_boxes[idx] if len(self.crop_boxes) else self.crop_boxes,
            low_res=None if self.low_res is None else _take_rows(self.low_res, idx),
        )

    @staticmethod
    def cat(parts: Sequence[Candidates]) -> Candidates:
        """Rows of all ``parts`` in order."""
        parts = [p for p in parts if len(p)]
        if not parts:
            return Candidates()
        lows = [p.low_res for p in parts]
        low_res: Any = None
        if all(isinstance(x, np.ndarray) for x in lows):
            low_res = np.concatenate(lows)
        elif all(x is not None for x in lows):
            import torch

            low_res = torch.cat(lows)
        return Candidates(
            rles=[r for p in parts for r in p.rles],
            boxes=np.concatenate([p.boxes for p in parts]),
            iou_preds=np.concatenate([p.iou_preds for p in parts]),
            stability=np.concatenate([p.stability for p in parts]),
            points=np.concatenate([p.points for p in parts]),
            crop_boxes=np.concatenate([p.crop_boxes for p in parts]),
            low_res=low_res,
        )


def postprocess_small_regions(data: Candidates, min_area: float, nms_thresh: float) -> Candidates:
    """Fill holes and drop islands smaller than ``min_area`` pixels in every mask, then NMS
    (IoU ``> nms_thresh``) preferring masks that needed no change; as the reference does."""
    if len(data) == 0:
        return data
    masks, unchanged = [], []
    for rle in data.rles:
        mask, changed_holes = remove_small_regions(rle_to_mask(rle), min_area, "holes")
        mask, changed_islands = remove_small_regions(mask, min_area, "islands")
        masks.append(mask)
        unchanged.append(float(not (changed_holes or changed_islands)))
    boxes = mask_to_box(np.stack(masks))
    scores = np.asarray(unchanged, dtype=np.float32)
    keep = batched_nms_numpy(boxes.astype(np.float32), scores, None, nms_thresh)
    out = data.take(keep)
    out.boxes = out.boxes.copy()
    for row, i in enumerate(keep):
        if unchanged[i] == 0.0:
            out.rles[row] = mask_to_rle(masks[i])
            out.boxes[row] = boxes[i]
    return out


def _take_rows(x: Any, idx: np.ndarray) -> Any:
    if isinstance(x, np.ndarray):
        return x[idx]
    import torch

    return x[torch.from_numpy(idx).to(x.device)]


def to_records(data: Candidates, output_mode: str) -> list[dict[str, Any]]:
    """Columns -> Meta's records (see :meth:`SamAutomaticMaskGenerator.generate`)."""
    records = []
    bboxes = box_xyxy_to_xywh(data.boxes).tolist()
    crops = box_xyxy_to_xywh(data.crop_boxes).tolist()
    for i, rle in enumerate(data.rles):
        if output_mode == "binary_mask":
            seg: Any = rle_to_mask(rle)
        elif output_mode == "coco_rle":
            seg = {"size": list(rle["size"]), "counts": rle_to_coco_string(rle["counts"])}
        else:
            seg = rle
        records.append(
            {
                "segmentation": seg,
                "area": area_from_rle(rle),
                "bbox": bboxes[i],
                "predicted_iou": float(data.iou_preds[i]),
                "point_coords": [data.points[i].tolist()],
                "stability_score": float(data.stability[i]),
                "crop_box": crops[i],
            }
        )
    return records
