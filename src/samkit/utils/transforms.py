"""``ResizeLongestSide``: Meta's resize-and-map object over samkit's pure functions.

Frames as in :mod:`samkit.transforms`: "original" is the user's image (H, W), "input" the
resized image whose longest side is ``target_length``. The NumPy image resize is Pillow's
bilinear (antialiased when shrinking), the torch one ``F.interpolate(bilinear,
antialias=True)``, as Meta's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from samkit import transforms

if TYPE_CHECKING:
    import torch

__all__ = ["ResizeLongestSide"]


class ResizeLongestSide:
    """Resize images so their longest side is ``target_length`` and map points and boxes
    into that frame (drop-in for ``segment_anything.utils.transforms.ResizeLongestSide``)."""

    def __init__(self, target_length: int) -> None:
        self.target_length = int(target_length)

    @staticmethod
    def get_preprocess_shape(oldh: int, oldw: int, long_side_length: int) -> tuple[int, int]:
        """(h, w) of an (oldh, oldw) image resized to ``long_side_length`` (rounded half up)."""
        return transforms.preprocess_shape(oldh, oldw, long_side_length)

    def apply_image(self, image: np.ndarray) -> np.ndarray:
        """(H, W, 3) uint8 -> (h, w, 3) uint8."""
        return transforms.resize_image(np.asarray(image), self.target_length)

    def apply_coords(self, coords: np.ndarray, original_size: tuple[int, ...]) -> np.ndarray:
        """Points (..., 2) XY in original pixels -> input-frame pixels, float64."""
        return transforms.apply_coords(coords, _hw(original_size), self.target_length)

    def apply_boxes(self, boxes: np.ndarray, original_size: tuple[int, ...]) -> np.ndarray:
        """Boxes (..., 4) XYXY in original pixels -> (B, 4) input-frame pixels."""
        coords = self.apply_coords(np.asarray(boxes).reshape(-1, 2, 2), original_size)
        return coords.reshape(-1, 4)

    def apply_image_torch(self, image: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) float tensor -> (B, C, h, w), bilinear with antialiasing."""
        import torch.nn.functional as F

        h, w = self.get_preprocess_shape(image.shape[2], image.shape[3], self.target_length)
        return F.interpolate(image, (h, w), mode="bilinear", align_corners=False, antialias=True)

    def apply_coords_torch(
        self, coords: torch.Tensor, original_size: tuple[int, ...]
    ) -> torch.Tensor:
        """Points (..., 2) tensor -> float32 input-frame pixels on the same device."""
        old_h, old_w = _hw(original_size)
        new_h, new_w = self.get_preprocess_shape(old_h, old_w, self.target_length)
        out = coords.detach().clone().float()
        out[..., 0] = out[..., 0] * (new_w / old_w)
        out[..., 1] = out[..., 1] * (new_h / old_h)
        return out

    def apply_boxes_torch(
        self, boxes: torch.Tensor, original_size: tuple[int, ...]
    ) -> torch.Tensor:
        """Boxes (..., 4) tensor -> (B, 4) float32 input-frame pixels."""
        return self.apply_coords_torch(boxes.reshape(-1, 2, 2), original_size).reshape(-1, 4)


def _hw(size: tuple[int, ...]) -> tuple[int, int]:
    return int(size[0]), int(size[1])
