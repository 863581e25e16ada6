"""Full-resolution logits -> masks, pixel counts and stability scores (torch or NumPy).

Counting is exact on whatever logits it is given; whether those are the reference's values
depends on the upsampler that produced them (see :mod:`samkit.postprocess`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

__all__ = [
    "binarize",
    "count_above",
    "filter_stable",
    "stability_from_counts",
    "stability_score",
]


def binarize(logits: Any, threshold: float) -> Any:
    """Masks ``logits > threshold`` (the reference's strict comparison), same library as the
    input: a bool torch tensor or a bool NumPy array. NumPy compares in float32."""
    if isinstance(logits, np.ndarray):
        return logits > np.float32(threshold)
    return logits > threshold


def count_above(logits: torch.Tensor | np.ndarray, threshold: float) -> np.ndarray:
    """``(N,)`` int64 number of pixels of each ``(N, H, W)`` logit map ``> threshold``."""
    above = binarize(logits, threshold)
    n, size = above.shape[0], int(np.prod(above.shape[1:]))
    if not isinstance(above, np.ndarray):
        above = above.reshape(n, size).cpu().numpy()
    return np.count_nonzero(above.reshape(n, size), axis=1).astype(np.int64)


def stability_from_counts(inter: np.ndarray, union: np.ndarray) -> np.ndarray:
    """``(N,)`` float32 ``inter / union`` as the reference divides them (float32; 0 / 0 is
    NaN, as there)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(inter, dtype=np.float32) / np.asarray(union, dtype=np.float32)


def stability_score(
    logits: torch.Tensor | np.ndarray, threshold: float, offset: float
) -> np.ndarray:
    """``(N,)`` float32 IoU of the masks ``logits > threshold + offset`` and ``logits >
    threshold - offset`` of ``(N, H, W)`` logits (the first lies inside the second), as the
    reference's ``calculate_stability_score``."""
    inter = count_above(logits, threshold + offset)
    union = count_above(logits, threshold - offset)
    return stability_from_counts(inter, union)


def filter_stable(
    logits: torch.Tensor | np.ndarray, threshold: float, offset: float, stability_thresh: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Full-resolution logits ``(N, H, W)`` -> ``(keep, stability, masks)``: int64 indices of
    the maps whose stability score is ``>= stability_thresh`` (all when it is 0), their float32
    stability scores ``(K,)`` and bool masks ``(K, H, W)`` (``logits > threshold``) as NumPy."""
    stability = stability_score(logits, threshold, offset)
    keep = np.arange(len(stability), dtype=np.int64)
    if stability_thresh > 0.0:
        keep = np.flatnonzero(stability >= np.float32(stability_thresh))
    if isinstance(logits, np.ndarray):
        masks = binarize(logits[keep], threshold)
    else:
        import torch

        rows = torch.from_numpy(keep).to(logits.device)
        masks = binarize(logits[rows], threshold).cpu().numpy()
    return keep, stability[keep], masks
