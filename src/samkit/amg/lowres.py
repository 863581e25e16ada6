"""The opt-in low-resolution filter: judge masks on the decoder's 256 x 256 logits and
upsample only the few that survive every filter and the per-crop NMS.

The output differs from the exact path only in which masks are kept: a mask whose low-res
stability or box falls on the other side of a threshold than its full-resolution one. Every
kept mask's segmentation, box, area and stability score are computed at full resolution.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from samkit.amg.records import Candidates
from samkit.families.geometry import Geometry as FamilyGeometry
from samkit.masks import mask_to_box, masks_to_rle
from samkit.postprocess import filter_stable

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
    # Low-res stability runs lower than full-res (a 4x coarser boundary): pre-filter with a
    # margin and let the full-res check after NMS decide.
    margin_thresh = max(0.0, stability_thresh - LOW_RES_MARGIN) if stability_thresh > 0 else 0.0
    idx, stab, masks = filter_stable(inner, mask_threshold, offset, margin_thresh)
    keep = torch.from_numpy(idx).to(low.device)
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
    return Candidates(
        rles=[],
        boxes=boxes.astype(np.int64),
        iou_preds=iou[keep].float().cpu().numpy(),
        stability=stab,
        points=points[idx],
        low_res=low[keep, :h, :w].clone(),
    )


def upsample_survivors(
    data: Candidates,
    input_size: tuple[int, int],
    crop_size: tuple[int, int],
    frames: FamilyGeometry,
    mask_threshold: float,
    offset: float,
    stability_thresh: float,
    chunk_elements: int,
) -> Candidates:
    """Upsample the kept low-res logits to the crop's full resolution through the engine's
    geometry ``frames``; recompute stability (and re-apply its filter), boxes and RLEs there."""
    if len(data) == 0 or data.low_res is None:
        return data
    low = data.low_res
    side = frames.low_res
    full = low.new_zeros((len(data), side, side))
    full[:, : low.shape[1], : low.shape[2]] = low
    chunk = max(1, chunk_elements // (crop_size[0] * crop_size[1]))
    parts = []
    for start in range(0, len(data), chunk):
        logits = frames.upsample(full[start : start + chunk], input_size, crop_size, exact=True)
        idx, stability, masks = filter_stable(logits, mask_threshold, offset, stability_thresh)
        idx = idx + start
        parts.append(
            Candidates(
                rles=masks_to_rle(masks),
                boxes=mask_to_box(masks),
                iou_preds=data.iou_preds[idx],
                stability=stability,
                points=data.points[idx],
            )
        )
    return Candidates.cat(parts)


def filter_low_res(
    engine: Any,
    low: torch.Tensor,
    iou: torch.Tensor,
    points: np.ndarray,
    crop_size: tuple[int, int],
    offset: float,
    stability_thresh: float,
) -> Candidates:
    """:func:`low_res_candidates` for the engine's current image."""
    args = (engine.sizes()[0], crop_size, engine.image_size, engine.mask_threshold, offset)
    return low_res_candidates(low, iou, points, *args, stability_thresh)


def upsample_kept(
    engine: Any, data: Candidates, offset: float, stability_thresh: float, chunk_elements: int
) -> Candidates:
    """:func:`upsample_survivors` for the engine's current image (crop frame)."""
    inp, orig = engine.sizes()
    from samkit.engine import engine_geometry

    args = (
        engine_geometry(engine),
        engine.mask_threshold,
        offset,
        stability_thresh,
        chunk_elements,
    )
    return upsample_survivors(data, inp, orig, *args)
