"""Predictor behaviours of zoo models, as options (samkit's defaults are unchanged):

- EdgeSAM picks masks by stability score (its IoU head was not distilled) and can return all
  four decoder masks: :func:`predict_four_masks`, :func:`stability_scores`;
- TinySAM's predictor always returns the three multimask outputs: in samkit that is
  ``predict(..., multimask_output=True)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from samkit.postprocess.reduce import stability_score

__all__ = ["predict_four_masks", "stability_scores"]


def stability_scores(
    low_res_logits: Any, threshold: float = 0.0, offset: float = 1.0
) -> np.ndarray:
    """Stability score of each (..., h, w) logits map: IoU of the masks at ``threshold +
    offset`` and ``threshold - offset`` (EdgeSAM's substitute for the IoU prediction, computed
    on the low-res logits with offset 1.0). Returns (...,) float32."""
    arr = np.asarray(low_res_logits, dtype=np.float32)
    flat = arr.reshape(-1, *arr.shape[-2:])
    return stability_score(flat, threshold, offset).reshape(arr.shape[:-2])


def predict_four_masks(
    predictor: Any, use_stability_score: bool = True, **prompts: Any
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """EdgeSAM's 4-mask output for one object: the decoder's single-output mask then its three
    multimask candidates (EdgeSAM's ``num_multimask_outputs=4``), with stability scores in
    place of predicted IoU unless ``use_stability_score`` is False.

    ``predictor``: a :class:`samkit.SamPredictor` with an image set; ``prompts``: its
    ``predict`` arguments (points, labels, box, mask_input) in original pixels. Returns masks
    (4, H, W) bool, scores (4,), low-res logits (4, 256, 256).
    """
    single = predictor.predict(**prompts, multimask_output=False)
    multi = predictor.predict(**prompts, multimask_output=True)
    masks, scores, low = (np.concatenate([a, b]) for a, b in zip(single, multi, strict=True))
    if use_stability_score:
        scores = stability_scores(low, predictor.model.mask_threshold)
    return masks, scores, low
