"""The opt-in low-resolution filter: judge masks on the decoder's 256 x 256 logits and
upsample only the few that survive every filter and the per-crop NMS.

The output differs from the exact path only in which masks are kept: a mask whose low-res
stability or box falls on the other side of a threshold than its full-resolution one. Every
kept mask's segmentation, box, area and stability score are computed at full resolution.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from samkit.amg.records import Candidates
from samkit.amg.upsample import stability_scores, upsample_logits
from samkit.masks import mask_to_box, masks_to_rle

LOW_RES_MARGIN = 0.1


def valid_low_res(input_size: tuple[int, int], image_size: int, low: int = 256) -> tuple[int, int]:
    """Rows and columns ``(h, w)`` of the low-res logits that the upsampled, cropped mask depends
    on (the image's part plus one row/column of margin for bilinear interpolation)."""
    scale = low / image_size
    h = min(low, math.ceil(input_size[0] * scale) + 1)
    w = min(low, math.ceil(input_size[1] * scale) + 1)
    return h, w


def low_res_candidates(
    low: torch.Tensor,
    iou: torch.Tensor,
    points: np.ndarray,
    input_size: tuple[int, int],
    crop_size: tuple[int, int],
    image_size: int,
    mask_threshold: float,
    offset: float,
    stability_thresh: float,
) -> Candidates:
    """Low-res logits ``(N, 256, 256)`` -> candidates with low-res stability, boxes scaled to
    the crop frame (approximate), and the logits kept for upsampling later."""
    h, w = valid_low_res(input_size, image_size, low.shape[-1])
    scale = low.shape[-1] / image_size
    inner_h = min(h, math.ceil(input_size[0] * scale))
    inner_w = min(w, math.ceil(input_size[1] * scale))
    inner = low[:, :inner_h, :inner_w]
    inter = (inner > mask_threshold + offset).sum((-2, -1))
    union = (inner > mask_threshold - offset).sum((-2, -1))
    stability = inter.to(torch.float32) / union.to(torch.float32)
    keep = torch.arange(len(stability), device=low.device)
    if stability_thresh > 0.0:
        # Low-res stability runs lower than full-res (a 4x coarser boundary): pre-filter with a
        # margin and let the full-res check after NMS decide.
        keep = (stability >= stability_thresh - LOW_RES_MARGIN).nonzero().flatten()
    masks = (inner[keep] > mask_threshold).cpu().numpy()
    boxes_lr = mask_to_box(masks).astype(np.float64)
    # A low-res pixel i spans input pixels [i / scale, (i + 1) / scale), i.e. crop pixels
    # times crop/input size.
    sx = crop_size[1] / input_size[1] / scale
    sy = crop_size[0] / input_size[0] / scale
    boxes = np.empty_like(boxes_lr)
    boxes[:, 0] = np.floor(boxes_lr[:, 0] * sx)
    boxes[:, 1] = np.floor(boxes_lr[:, 1] * sy)
    boxes[:, 2] = np.ceil((boxes_lr[:, 2] + 1) * sx) - 1
    boxes[:, 3] = np.ceil((boxes_lr[:, 3] + 1) * sy) - 1
    boxes[:, 2] = np.minimum(boxes[:, 2], crop_size[1] - 1)
    boxes[:, 3] = np.minimum(boxes[:, 3], crop_size[0] - 1)
    boxes[~masks.any(axis=(1, 2))] = 0
    idx = keep.cpu().numpy()
    return Candidates(
        rles=[],
        boxes=boxes.astype(np.int64),
        iou_preds=iou[keep].float().cpu().numpy(),
        stability=stability[keep].cpu().numpy(),
        points=points[idx],
        low_res=low[keep, :h, :w].clone(),
    )


def upsample_survivors(
    data: Candidates,
    input_size: tuple[int, int],
    crop_size: tuple[int, int],
    image_size: int,
    mask_threshold: float,
    offset: float,
    stability_thresh: float,
    chunk_elements: int,
) -> Candidates:
    """Upsample the kept low-res logits to the crop's full resolution; recompute stability
    (and re-apply its filter), boxes and RLEs there."""
    if len(data) == 0 or data.low_res is None:
        return data
    low = data.low_res
    full = low.new_zeros((len(data), 256, 256))
    full[:, : low.shape[1], : low.shape[2]] = low
    chunk = max(1, chunk_elements // (crop_size[0] * crop_size[1]))
    rles, boxes, stab = [], [], []
    for start in range(0, len(data), chunk):
        logits = upsample_logits(full[start : start + chunk], input_size, crop_size, image_size)
        stab.append(stability_scores(logits, mask_threshold, offset))
        masks = (logits > mask_threshold).cpu().numpy()
        boxes.append(mask_to_box(masks))
        rles.extend(masks_to_rle(masks))
    out = Candidates(
        rles=rles,
        boxes=np.concatenate(boxes),
        iou_preds=data.iou_preds,
        stability=np.concatenate(stab),
        points=data.points,
    )
    if stability_thresh > 0.0:
        out = out.take(np.flatnonzero(out.stability >= np.float32(stability_thresh)))
    return out
