"""SAM 2's geometry as a :class:`~samkit.families.geometry.Geometry`: the exact frames of Meta's
``SAM2Transforms`` (square resize of the [0, 1] image with antialiasing, per-axis prompt
scaling, one bilinear resize of the low-res logits to the original size)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from samkit.errors import SamkitError

__all__ = ["Sam2Geometry"]


@dataclass(frozen=True)
class Sam2Geometry:
    """Square input of side ``encoder_side`` (1024); prompts in the same square frame, which the
    image fills; low-res logits of side ``encoder_side // 4`` covering it."""

    encoder_side: int = 1024
    # Bilinear resizes from low-res logits to the original size (SAM-1's geometry makes two);
    # segment everything's NumPy emulation of SAM-1's two resizes is not used where this is 1.
    resizes: ClassVar[int] = 1

    def __post_init__(self) -> None:
        if self.encoder_side < 16 or self.encoder_side % 16:
            raise SamkitError(f"encoder_side must be a multiple of 16, got {self.encoder_side}")

    @property
    def prompt_side(self) -> int:
        return self.encoder_side

    @property
    def low_res(self) -> int:
        return self.encoder_side // 4

    def input_size(self, original_size: tuple[int, int]) -> tuple[int, int]:
        return (self.encoder_side, self.encoder_side)

    def encoder_input(
        self,
        image: np.ndarray,
        mean: tuple[float, float, float],
        std: tuple[float, float, float],
    ) -> np.ndarray:
        """(H, W, 3) uint8 RGB -> (1, 3, S, S) float32, as
        :func:`samkit.sam2.transforms.preprocess_image` (``mean`` / ``std`` on [0, 1])."""
        import torch

        from samkit.sam2.transforms import preprocess_image

        m = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
        s = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)
        return preprocess_image(image, self.encoder_side, m, s).numpy()

    def apply_coords(self, coords: np.ndarray, original_size: tuple[int, int]) -> np.ndarray:
        """(..., 2) XY original pixels -> prompt frame, in float32 as Meta computes it."""
        h, w = original_size
        out = np.array(coords, dtype=np.float32, copy=True)
        out[..., 0] = out[..., 0] / np.float32(w)
        out[..., 1] = out[..., 1] / np.float32(h)
        return (out * np.float32(self.encoder_side)).astype(np.float64)

    def apply_boxes(self, boxes: np.ndarray, original_size: tuple[int, int]) -> np.ndarray:
        boxes = np.asarray(boxes)
        return self.apply_coords(boxes.reshape(-1, 2, 2), original_size).reshape(boxes.shape)

    def upsample(
        self,
        low: Any,
        input_size: tuple[int, int],
        original_size: tuple[int, int],
        exact: bool = False,
    ) -> Any:
        """Low-res logits (..., s, s) (torch or NumPy) -> (..., H, W) logits: one bilinear
        resize (``align_corners=False``), the same whether ``exact`` or not."""
        import torch
        import torch.nn.functional as F

        is_numpy = isinstance(low, np.ndarray)
        x = torch.as_tensor(low)
        lead = x.shape[:-2]
        flat = x.reshape(-1, 1, *x.shape[-2:]).float()
        up = F.interpolate(
            flat,
            (int(original_size[0]), int(original_size[1])),
            mode="bilinear",
            align_corners=False,
        )
        up = up.reshape(*lead, *up.shape[-2:])
        return up.numpy() if is_numpy else up

    def mask_prompt(
        self, mask: np.ndarray, original_size: tuple[int, int], value: float = 20.0
    ) -> np.ndarray:
        """A binary (H, W) mask -> (1, s, s) logits prompt (+-``value``), resized bilinearly."""
        from PIL import Image

        img = Image.fromarray(np.asarray(mask).astype(np.uint8) * 255)
        small = img.resize((self.low_res, self.low_res), Image.Resampling.BILINEAR)
        prob = np.asarray(small, dtype=np.float32) / 255.0
        return ((prob > 0.5).astype(np.float32) * 2 - 1)[None] * value
