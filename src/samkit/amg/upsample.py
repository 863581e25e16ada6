"""Full-resolution mask logits, computed with no more work than the output needs.

:func:`upsample_logits` returns exactly (bit for bit) what the reference's two bilinear resizes
return (its stability scores count pixels right at the thresholds, so the generator keeps the
reference's arithmetic rather than :func:`samkit.transforms.postprocess_masks`' composed maps),
but its first bilinear stage (low-res -> padded model input) only computes the rows and columns that survive the crop to the resized
image: for a 16:9 image that skips 44 % of the padded square. Bilinear interpolation with
``align_corners=False`` computes each output pixel from the scale factor and its two source
neighbours only, so a slice of the low-res logits with the same scale factor (and two rows /
columns of margin so that no needed neighbour is clamped) gives identical values.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["count_above", "stability_scores", "upsample_logits"]


def upsample_logits(
    low: torch.Tensor, input_size: tuple[int, int], original_size: tuple[int, int], image_size: int
) -> torch.Tensor:
    """Low-res logits ``(N, h', w')`` (h' = w' = image_size / 4) -> logits ``(N, H, W)`` in the
    original frame, identical to the reference's resize / crop / resize."""
    factor = image_size // low.shape[-1]
    rows = min(low.shape[-2], math.ceil(input_size[0] / factor) + 2)
    cols = min(low.shape[-1], math.ceil(input_size[1] / factor) + 2)
    x = F.interpolate(
        low[:, None, :rows, :cols],
        (rows * factor, cols * factor),
        mode="bilinear",
        align_corners=False,
    )
    x = x[..., : input_size[0], : input_size[1]]
    return F.interpolate(x, original_size, mode="bilinear", align_corners=False)[:, 0]


def count_above(logits: torch.Tensor, threshold: float) -> np.ndarray:
    """``(N,)`` int64 number of pixels of each ``(N, H, W)`` logit map ``> threshold``."""
    above = (logits > threshold).reshape(logits.shape[0], -1).cpu().numpy()
    return np.count_nonzero(above, axis=1).astype(np.int64)


def stability_scores(logits: torch.Tensor, threshold: float, offset: float) -> np.ndarray:
    """``(N,)`` float32 IoU of the masks ``logits > threshold + offset`` and ``> threshold -
    offset`` (the first lies inside the second), as the reference computes it."""
    inter = count_above(logits, threshold + offset).astype(np.float32)
    union = count_above(logits, threshold - offset).astype(np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        return inter / union
