"""Held-out mIoU of a model under training, with the protocols of ``samkit val``: ``box`` (the
tight GT box, single-mask output) and ``point`` (one positive click at the interior-most pixel,
multimask output, highest predicted IoU kept), IoU at the original resolution, averaged over
instances. Embeddings come from the training's cache when the encoder is frozen."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import cv2
import numpy as np
import torch

from samkit import transforms
from samkit.datasets import Sample
from samkit.modeling import Sam

__all__ = ["box_fill_miou", "heldout_miou", "interior_point"]


def interior_point(mask: np.ndarray) -> tuple[float, float]:
    """(x, y) of the mask pixel farthest from the background (image border = background)."""
    padded = np.pad(mask.astype(np.uint8), 1)
    dist = cv2.distanceTransform(padded, cv2.DIST_L2, 5)[1:-1, 1:-1]
    y, x = np.unravel_index(int(np.argmax(dist)), dist.shape)
    return float(x), float(y)


def _iou(pred: np.ndarray, gt: np.ndarray) -> float:
    union = np.logical_or(pred, gt).sum()
    return float(np.logical_and(pred, gt).sum() / union) if union else 1.0


def box_fill_miou(samples: Sequence[Sample]) -> float:
    """The "fill the box" baseline: mean IoU of each tight GT box's rectangle with its mask."""
    ious = []
    for s in samples:
        for inst in s.instances:
            x0, y0, x1, y1 = (int(v) for v in inst.box)
            rect = np.zeros_like(inst.mask)
            rect[y0 : y1 + 1, x0 : x1 + 1] = True
            ious.append(_iou(rect, inst.mask))
    return float(np.mean(ious)) if ious else float("nan")


@torch.inference_mode()
def heldout_miou(
    sam: Sam, samples: Sequence[Sample], embed: Callable[[int, Sample], Any]
) -> dict[str, float]:
    """``{"box": mIoU, "point": mIoU}`` over every instance of ``samples``; ``embed(i, sample)``
    gives sample i's image state (features (1, C, g, g), original_size, input_size)."""
    sam.eval()
    size = sam.image_size
    ious: dict[str, list[float]] = {"box": [], "point": []}
    for i, sample in enumerate(samples):
        if not sample.instances:
            continue
        state = embed(i, sample)
        features = torch.as_tensor(state.features, device=sam.device, dtype=torch.float32)
        hw = (sample.height, sample.width)
        gts = np.stack([inst.mask for inst in sample.instances])
        boxes = transforms.apply_boxes(np.stack([inst.box for inst in sample.instances]), hw, size)
        pts = np.array([interior_point(m) for m in gts])[:, None]
        pts = transforms.apply_coords(pts, hw, size)
        device = sam.device
        low, _ = sam.decode(
            features,
            boxes=torch.as_tensor(boxes, dtype=torch.float32, device=device),
            multimask_output=False,
        )
        masks = transforms.postprocess_masks(low, state.input_size, hw, size)[:, 0] > 0
        ious["box"] += [_iou(m, g) for m, g in zip(masks.cpu().numpy(), gts, strict=True)]
        coords = torch.as_tensor(pts, dtype=torch.float32, device=device)
        labels = torch.ones(coords.shape[:2], dtype=torch.int, device=device)
        low, scores = sam.decode(features, points=(coords, labels), multimask_output=True)
        best = scores.argmax(dim=1)
        chosen = low[torch.arange(len(best)), best][:, None]
        masks = transforms.postprocess_masks(chosen, state.input_size, hw, size)[:, 0] > 0
        ious["point"] += [_iou(m, g) for m, g in zip(masks.cpu().numpy(), gts, strict=True)]
    return {k: float(np.mean(v)) if v else float("nan") for k, v in ious.items()}
