"""Segment everything's exact path: the reference's stability scores, boxes and masks from
the decoder's low-res logits (:mod:`samkit.postprocess.exact`), on either engine."""

from __future__ import annotations

from typing import Any

import numpy as np

from samkit.amg.records import Candidates
from samkit.masks import mask_to_box, masks_to_rle
from samkit.postprocess import filter_stable
from samkit.postprocess.exact import Geometry, emulation_matches_torch
from samkit.postprocess.exact_filter import filter_candidates, finish_candidates

__all__ = ["filter_exact", "finish_exact"]

# Upsampled float logits held at once on the fallback path: 64 Mi elements (256 MiB).
_CHUNK_ELEMENTS = 64 * 1024 * 1024


def filter_exact(
    engine: Any,
    low: Any,
    iou: np.ndarray,
    pts: np.ndarray,
    geometry: Geometry,
    offset: float,
    stability_thresh: float,
) -> Candidates:
    """Low-res logits ``(N, s, s)`` (the engine's native array), IoUs ``(N,)`` float32 and
    points ``(N, 2)`` -> the candidates that pass the stability filter (the reference's
    decision), with the reference's boxes (crop frame) and provisional stability scores
    (:func:`~samkit.postprocess.exact_filter.filter_candidates`); their low-res logits are kept
    (cut to the part any pixel reads) for :func:`finish_exact` after the crop's NMS."""
    one_resize = getattr(engine.geometry, "resizes", 2) != 2  # SAM 2: not SAM-1's two resizes
    if engine.backend == "torch" and (one_resize or not emulation_matches_torch(geometry)):
        return _filter_upsampled(engine, low, iou, pts, geometry, offset, stability_thresh)
    rows, cols = geometry.used_low_res()
    low_np = np.ascontiguousarray(engine.to_numpy(low)[:, :rows, :cols])
    keep, stability, boxes = filter_candidates(
        low_np, geometry, engine.mask_threshold, offset, stability_thresh
    )
    return Candidates(
        rles=[],
        boxes=boxes,
        iou_preds=iou[keep],
        stability=stability,
        points=pts[keep],
        low_res=low_np[keep],
    )


def _filter_upsampled(
    engine: Any,
    low: Any,
    iou: np.ndarray,
    pts: np.ndarray,
    geometry: Geometry,
    offset: float,
    stability_thresh: float,
) -> Candidates:
    """:func:`filter_exact` for a geometry where the NumPy kernel emulation is not torch's bit
    for bit (or not the engine's resizes at all): the engine's resizes a chunk at a time, each chunk reduced at once (RLEs
    made here)."""
    chunk = max(1, _CHUNK_ELEMENTS // (geometry.original_size[0] * geometry.original_size[1]))
    parts = []
    for start in range(0, low.shape[0], chunk):
        sl = slice(start, start + chunk)
        idx, stability, masks = filter_stable(
            engine.upsample(low[sl]), engine.mask_threshold, offset, stability_thresh
        )
        parts.append(
            Candidates(
                rles=masks_to_rle(masks),
                boxes=mask_to_box(masks),
                iou_preds=iou[sl][idx],
                stability=stability,
                points=pts[sl][idx],
            )
        )
    return Candidates.cat(parts)


def finish_exact(
    data: Candidates, geometry: Geometry, threshold: float, offset: float
) -> Candidates:
    """Exact stability scores and RLEs (crop frame) of the masks that survived the crop's NMS,
    from their kept low-res logits (``offset``: the generator's ``stability_score_offset``);
    candidates from the fallback path already have both."""
    if isinstance(data.low_res, np.ndarray):
        data.stability, data.rles = finish_candidates(data.low_res, geometry, threshold, offset)
        data.low_res = None
    return data
