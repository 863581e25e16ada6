"""NumPy mask upsampling for the torch-free backends (input checks: :mod:`samkit.validation`).

:func:`upscale_logits` equals :func:`samkit.transforms.postprocess_masks` (bilinear to the
padded input, crop, bilinear to the original size, ``align_corners=False``) up to float
rounding: both bilinear steps are linear maps along each axis, composed here into one
(H, s) matrix for rows and one (W, s) matrix for columns.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from samkit import resample
from samkit.transforms import preprocess_shape

__all__ = ["upscale_logits"]


@lru_cache(maxsize=16)
def _axis_maps(
    low: tuple[int, int], image_size: int, original_size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    input_size = preprocess_shape(original_size[0], original_size[1], image_size)
    rows, cols = (
        resample.axis_map(low[axis], image_size, input_size[axis], original_size[axis])
        for axis in range(2)
    )
    return rows.astype(np.float32), cols.astype(np.float32)


def upscale_logits(
    low_res: np.ndarray, image_size: int, original_size: tuple[int, int]
) -> np.ndarray:
    """Low-res logits (..., s, s) -> logits (..., H, W) float32 in the original frame."""
    low = (int(low_res.shape[-2]), int(low_res.shape[-1]))
    rows, cols = _axis_maps(low, image_size, (int(original_size[0]), int(original_size[1])))
    x = np.asarray(low_res, dtype=np.float32)
    return np.matmul(rows, np.matmul(x, cols.T))
