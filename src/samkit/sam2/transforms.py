"""SAM 2's geometry, as pure functions: the square resize (no aspect-preserving pad), ImageNet
normalisation on [0, 1], prompt coordinates normalised by the original width / height then
scaled to the input side, and low-res logits upsampled straight to the original size, with
the optional hole / sprinkle removal done on the low-res logits by OpenCV's connected
components (8-connectivity; no CUDA extension).

Frames: "original" = the user's (H, W) pixels; "input" = the square (S, S) model input.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from samkit.errors import ArgumentError

__all__ = [
    "fill_holes_and_sprinkles",
    "postprocess_masks",
    "preprocess_image",
    "to_input_coords",
]


def preprocess_image(
    image: np.ndarray,
    size: int,
    mean: torch.Tensor,
    std: torch.Tensor,
    device: torch.device | None = None,
) -> torch.Tensor:
    """(H, W, 3) uint8 RGB -> (1, 3, size, size) float32: pixels / 255, bilinear resize with
    antialiasing (torchvision's ``Resize`` on a tensor), then ``(x - mean) / std``; ``mean`` /
    ``std`` (3, 1, 1) on [0, 1]."""
    x = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))
    x = x.to(device=device).to(torch.float32).div(255)
    x = F.interpolate(
        x[None], size=(size, size), mode="bilinear", align_corners=False, antialias=True
    )
    return (x - mean.to(x.device)) / std.to(x.device)


def to_input_coords(
    coords: torch.Tensor, size: int, original_size: tuple[int, int], normalize: bool = True
) -> torch.Tensor:
    """(..., 2) XY -> the input frame. ``normalize``: ``coords`` are original-image pixels
    (divided by W / H first); otherwise they are already in [0, 1]."""
    if normalize:
        h, w = original_size
        coords = coords.clone()
        coords[..., 0] = coords[..., 0] / w
        coords[..., 1] = coords[..., 1] / h
    return coords * size


def _small_components(binary: np.ndarray, max_area: float) -> np.ndarray:
    """(h, w) bool -> bool: pixels of 8-connected components of ``binary`` with area <= max_area."""
    import cv2

    count, labels, stats, _ = cv2.connectedComponentsWithStats(
        binary.astype(np.uint8), connectivity=8
    )
    small = np.zeros(count, dtype=bool)
    small[1:] = stats[1:, cv2.CC_STAT_AREA] <= max_area
    return small[labels]


def fill_holes_and_sprinkles(
    logits: torch.Tensor,
    threshold: float = 0.0,
    max_hole_area: float = 0.0,
    max_sprinkle_area: float = 0.0,
) -> torch.Tensor:
    """Low-res logits (B, M, h, w): background components (logit <= threshold) of area <=
    ``max_hole_area`` become ``threshold + 10``; then foreground components of area <=
    ``max_sprinkle_area`` become ``threshold - 10`` (Meta's ``SAM2Transforms.postprocess_masks``
    rule; areas in low-res pixels)."""
    if max_hole_area <= 0 and max_sprinkle_area <= 0:
        return logits
    out = logits.float().clone()
    flat = out.reshape(-1, *out.shape[-2:])
    values = flat.detach().cpu().numpy()
    holes = np.zeros(values.shape, dtype=bool)
    sprinkles = np.zeros(values.shape, dtype=bool)
    for i, v in enumerate(values):
        if max_hole_area > 0:
            holes[i] = _small_components(v <= threshold, max_hole_area)
    filled = np.where(holes, threshold + 10.0, values)
    for i, v in enumerate(filled):
        if max_sprinkle_area > 0:
            sprinkles[i] = _small_components(v > threshold, max_sprinkle_area)
    result = np.where(sprinkles, threshold - 10.0, filled).astype(np.float32)
    return torch.from_numpy(result).to(out.device).reshape(out.shape)


def postprocess_masks(
    low_res: torch.Tensor,
    original_size: tuple[int, int],
    threshold: float = 0.0,
    max_hole_area: float = 0.0,
    max_sprinkle_area: float = 0.0,
) -> torch.Tensor:
    """Low-res logits (B, M, h, w) -> logits (B, M, H, W) in the original frame (one bilinear
    resize, after the optional hole / sprinkle removal)."""
    if low_res.ndim != 4:
        raise ArgumentError(f"low-res logits must be (B, M, h, w), got {tuple(low_res.shape)}")
    masks = fill_holes_and_sprinkles(low_res.float(), threshold, max_hole_area, max_sprinkle_area)
    return F.interpolate(masks, original_size, mode="bilinear", align_corners=False)
