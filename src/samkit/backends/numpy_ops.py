"""NumPy pieces of the torch-free backends: input checks and mask upsampling.

:func:`upscale_logits` equals :func:`samkit.transforms.postprocess_masks` (bilinear to the
padded input, crop, bilinear to the original size, ``align_corners=False``) up to float
rounding: both bilinear steps are linear maps along each axis, composed here into one
(H, s) matrix for rows and one (W, s) matrix for columns.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from samkit import resample
from samkit.errors import PromptError, SamkitError
from samkit.transforms import preprocess_shape

__all__ = ["as_image", "as_mask_input", "as_points", "upscale_logits"]


def as_image(image: np.ndarray, name: str = "image") -> np.ndarray:
    """Validate an (H, W, 3) uint8 image; grayscale (H, W) is expanded to 3 channels."""
    if not isinstance(image, np.ndarray):
        raise SamkitError(
            f"{name} must be a numpy array of shape (H, W, 3), got {type(image).__name__}"
        )
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] != 3 or min(image.shape[:2]) < 1:
        raise SamkitError(
            f"{name} must have shape (H, W, 3) (or (H, W) grayscale), got {image.shape}"
        )
    if image.dtype != np.uint8:
        raise SamkitError(f"{name} must be uint8 with values in [0, 255], got dtype {image.dtype}")
    return image


def as_points(coords: object, labels: object, batched: bool) -> tuple[np.ndarray, np.ndarray]:
    """Validate points: coords (K, 2) / (B, K, 2) XY and labels (K,) / (B, K)."""
    if coords is None or labels is None:
        raise PromptError("point_coords and point_labels must be given together")
    c = np.asarray(coords, dtype=np.float64)
    lab = np.asarray(labels)
    want = "(B, K, 2)" if batched else "(K, 2)"
    if c.ndim != (3 if batched else 2) or c.shape[-1] != 2:
        raise PromptError(f"point_coords must have shape {want} as (x, y), got {c.shape}")
    if lab.shape != c.shape[:-1]:
        raise PromptError(
            f"point_labels must have shape {c.shape[:-1]} to match point_coords, got {lab.shape}"
        )
    if not np.isfinite(c).all():
        raise PromptError("point_coords contains NaN or infinite values")
    if not np.isin(lab, (-1, 0, 1, 2, 3)).all():
        raise PromptError(
            "point_labels must be 1 (foreground), 0 (background), 2/3 (box corners) or -1, "
            f"got {np.unique(lab).tolist()}"
        )
    return c, lab.astype(np.float32)


def as_mask_input(mask_input: object, ndim: int, low_res: int) -> np.ndarray:
    """Validate low-res logits: (1, s, s) for ndim 3, (B, 1, s, s) for ndim 4."""
    arr = np.asarray(mask_input, dtype=np.float32)
    if arr.ndim != ndim or arr.shape[-3:] != (1, low_res, low_res):
        want = f"(1, {low_res}, {low_res})" if ndim == 3 else f"(B, 1, {low_res}, {low_res})"
        raise PromptError(f"mask_input must be low-res logits of shape {want}, got {arr.shape}")
    return arr


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
