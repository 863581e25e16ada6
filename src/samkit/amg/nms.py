"""Greedy box non-maximum suppression with torchvision's exact semantics, without torchvision.

``batched_nms`` keeps boxes in order of descending score (a stable sort: equal scores keep
their input order), suppresses every later box of the same category whose IoU with a kept box
is ``> iou_threshold``, and returns the kept indices sorted by descending score. The IoU is
computed in the boxes' float dtype with the same operation order as torchvision's CPU kernel,
so decisions at the threshold agree bit for bit.

:func:`batched_nms_numpy` is the implementation (NumPy in, NumPy out, no torch);
:func:`batched_nms` and :func:`nms` are its torch-tensor front ends.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from samkit.errors import ArgumentError

if TYPE_CHECKING:
    import torch

__all__ = ["batched_nms", "batched_nms_numpy", "box_area", "nms"]


def box_area(boxes: torch.Tensor) -> torch.Tensor:
    """Areas ``(N,)`` of boxes ``(N, 4)`` XYXY, ``(x2 - x1) * (y2 - y1)`` in the boxes' dtype."""
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def _greedy(boxes: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy NMS over boxes ``(N, 4)`` already sorted by descending score; returns a bool
    keep mask ``(N,)``."""
    n = boxes.shape[0]
    x1, y1, x2, y2 = (np.ascontiguousarray(boxes[:, i]) for i in range(4))
    areas = (x2 - x1) * (y2 - y1)
    zero = boxes.dtype.type(0)
    suppressed = np.zeros(n, dtype=bool)
    for i in range(n):
        if suppressed[i]:
            continue
        rest = slice(i + 1, n)
        w = np.maximum(zero, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]))
        h = np.maximum(zero, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]))
        inter = w * h
        with np.errstate(divide="ignore", invalid="ignore"):
            overlap = inter / (areas[i] + areas[rest] - inter)
        # Compare in double, as torchvision's kernel does (float IoU promoted to the double threshold).
        suppressed[rest] |= overlap.astype(np.float64) > iou_threshold
    return ~suppressed


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Single-category NMS: boxes ``(N, 4)`` XYXY (float), scores ``(N,)``.

    Returns int64 indices ``(K,)`` of the kept boxes, by descending score.
    """
    import torch

    return batched_nms(boxes, scores, torch.zeros(len(boxes), dtype=torch.int64), iou_threshold)


def descending_order(scores: np.ndarray) -> np.ndarray:
    """Int64 indices sorting ``scores`` ``(N,)`` descending, ties in input order (a stable
    sort); NaN ranks first, as in ``torch.sort(descending=True)``."""
    x = np.asarray(scores, dtype=np.float64)
    nan = np.isnan(x)
    return np.lexsort((-np.where(nan, 0.0, x), ~nan)).astype(np.int64)


def _keep_sorted(sorted_boxes: np.ndarray, sorted_cats: np.ndarray, thresh: float) -> np.ndarray:
    """Bool keep mask ``(N,)`` for boxes ``(N, 4)`` and categories ``(N,)`` in score order."""
    keep = np.zeros(len(sorted_boxes), dtype=bool)
    for cat in np.unique(sorted_cats):
        members = np.flatnonzero(sorted_cats == cat)
        keep[members] = _greedy(sorted_boxes[members], thresh)
    return keep


def batched_nms_numpy(
    boxes: np.ndarray, scores: np.ndarray, idxs: np.ndarray | None, iou_threshold: float
) -> np.ndarray:
    """:func:`batched_nms` on NumPy arrays: boxes ``(N, 4)`` XYXY (integer boxes are computed
    in float32), scores ``(N,)``, idxs ``(N,)`` integer categories (None: one category).

    Returns int64 indices ``(K,)`` of the kept boxes, by descending score (ties in input order).
    """
    boxes = np.asarray(boxes)
    scores = np.asarray(scores)
    if boxes.ndim != 2 or boxes.shape[-1] != 4:
        raise ArgumentError(f"boxes must have shape (N, 4), got {boxes.shape}")
    cats = np.zeros(len(boxes), dtype=np.int64) if idxs is None else np.asarray(idxs)
    if scores.shape != (boxes.shape[0],) or cats.shape != (boxes.shape[0],):
        raise ArgumentError(
            f"scores and idxs must have shape ({boxes.shape[0]},), got "
            f"{scores.shape} and {cats.shape}"
        )
    if boxes.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    if not np.issubdtype(boxes.dtype, np.floating):
        boxes = boxes.astype(np.float32)
    order = descending_order(scores)
    return order[_keep_sorted(boxes[order], cats[order], iou_threshold)]


def batched_nms(
    boxes: torch.Tensor, scores: torch.Tensor, idxs: torch.Tensor, iou_threshold: float
) -> torch.Tensor:
    """Per-category NMS, a drop-in for ``torchvision.ops.batched_nms``.

    Args:
        boxes: ``(N, 4)`` XYXY, float (an integer dtype is computed in float32).
        scores: ``(N,)``; higher is kept first.
        idxs: ``(N,)`` integer category of each box; boxes of different categories never
            suppress each other.
        iou_threshold: boxes overlapping a kept box with IoU ``> iou_threshold`` are dropped.

    Returns:
        int64 indices ``(K,)`` into ``boxes`` of the kept boxes, sorted by descending score
        (ties in input order).
    """
    if boxes.ndim != 2 or boxes.shape[-1] != 4:
        raise ArgumentError(f"boxes must have shape (N, 4), got {tuple(boxes.shape)}")
    if scores.shape != (boxes.shape[0],) or idxs.shape != (boxes.shape[0],):
        raise ArgumentError(
            f"scores and idxs must have shape ({boxes.shape[0]},), got "
            f"{tuple(scores.shape)} and {tuple(idxs.shape)}"
        )
    device = boxes.device
    import torch

    if boxes.shape[0] == 0:
        return torch.empty((0,), dtype=torch.int64, device=device)
    if not boxes.dtype.is_floating_point:
        boxes = boxes.float()
    order = torch.sort(scores.detach().cpu(), descending=True, stable=True).indices
    sorted_boxes = boxes.detach().cpu()[order].numpy()
    sorted_cats = idxs.detach().cpu()[order].numpy()
    keep = _keep_sorted(sorted_boxes, sorted_cats, iou_threshold)
    return order[torch.from_numpy(keep)].to(device)
