"""Checks of user input shared by every engine (torch and the torch-free backends).

Each raises :class:`~samkit.errors.SamkitError` / :class:`~samkit.errors.PromptError` naming
the argument and what was expected. NumPy only.
"""

from __future__ import annotations

import numpy as np

from samkit.errors import PromptError, SamkitError

__all__ = ["check_image", "check_mask_input", "check_points"]

POINT_LABELS = (-1, 0, 1, 2, 3)


def check_image(image: object, name: str = "image") -> np.ndarray:
    """An (H, W, 3) uint8 image; grayscale (H, W) is expanded to 3 channels."""
    if not isinstance(image, np.ndarray):
        raise SamkitError(
            f"{name} must be a numpy array of shape (H, W, 3), got {type(image).__name__}"
        )
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] != 3:
        raise SamkitError(
            f"{name} must have shape (H, W, 3) (or (H, W) grayscale), got {image.shape}"
        )
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise SamkitError(f"{name} is empty: shape {image.shape}")
    if image.dtype != np.uint8:
        raise SamkitError(f"{name} must be uint8 with values in [0, 255], got dtype {image.dtype}")
    return image


def check_points(
    point_coords: object, point_labels: object, batched: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Points: coords (K, 2) XY with labels (K,), or (B, K, 2) / (B, K) when ``batched``.

    Returns float64 coords and int64 labels (1 foreground, 0 background, 2 / 3 box corners,
    -1 padding).
    """
    if point_coords is None or point_labels is None:
        raise PromptError("point_coords and point_labels must be given together")
    coords = np.asarray(point_coords, dtype=np.float64)
    labels = np.asarray(point_labels)
    want = "(B, K, 2)" if batched else "(K, 2)"
    if coords.ndim != (3 if batched else 2) or coords.shape[-1] != 2:
        raise PromptError(f"point_coords must have shape {want} as (x, y), got {coords.shape}")
    if labels.shape != coords.shape[:-1]:
        raise PromptError(
            f"point_labels must have shape {coords.shape[:-1]} to match point_coords, "
            f"got {labels.shape}"
        )
    if not np.isfinite(coords).all():
        raise PromptError("point_coords contains NaN or infinite values")
    if not np.isin(labels, POINT_LABELS).all():
        raise PromptError(
            "point_labels must be 1 (foreground), 0 (background), 2/3 (box corners) or -1, "
            f"got {np.unique(labels).tolist()}"
        )
    return coords, labels.astype(np.int64)


def check_mask_input(mask_input: object, ndim: int, low_res: int) -> np.ndarray:
    """Low-res logits from a previous call: (1, s, s) for ``ndim`` 3, (B, 1, s, s) for 4,
    with s = ``low_res`` (256 for 1024-input models). Returns float32."""
    arr = np.asarray(mask_input, dtype=np.float32)
    if arr.ndim != ndim or arr.shape[-3:] != (1, low_res, low_res):
        want = f"(1, {low_res}, {low_res})" if ndim == 3 else f"(B, 1, {low_res}, {low_res})"
        raise PromptError(f"mask_input must be low-res logits of shape {want}, got {arr.shape}")
    return arr
