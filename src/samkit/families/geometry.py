"""How a family maps an image and its prompts between frames.

Frames: **original** (the user's image, (H, W)); **encoder input** (the square array the
image encoder takes, side ``encoder_side``); **prompt frame** (the square frame the prompt
encoder's coordinates live in, side ``prompt_side``; the image's valid region in it is the
state's ``input_size``); **low-res** (the decoder's logits, side ``low_res``, covering the
whole prompt frame).

:class:`ResizeLongestPad` is SAM-1's geometry (resize the longest side, pad bottom / right);
with ``encoder_side=512, prompt_side=1024`` it is EfficientViT-SAM L's (a 512-px encoder input
with prompts in a 1024 frame). :class:`SquareResize` stretches the image to a square (SAM 2.1's
1024 x 1024 resize, no padding). A family returns one of these, or its own object with the
same methods, from ``Family.geometry``.

The image-side methods need NumPy and Pillow only; ``upsample`` takes torch tensors or NumPy
arrays.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
from PIL import Image

from samkit import transforms
from samkit.errors import SamkitError

__all__ = ["Geometry", "ResizeLongestPad", "SquareResize"]


@runtime_checkable
class Geometry(Protocol):
    """What code outside a family asks about frames (see the module docstring)."""

    @property
    def encoder_side(self) -> int:
        """Side of the square encoder input."""
        ...

    @property
    def prompt_side(self) -> int:
        """Side of the square prompt frame."""
        ...

    @property
    def low_res(self) -> int:
        """Side of the decoder's low-res logits (they cover the prompt frame)."""
        ...

    def input_size(self, original_size: tuple[int, int]) -> tuple[int, int]:
        """(h, w) of the image's valid region in the prompt frame."""
        ...

    def encoder_input(
        self,
        image: np.ndarray,
        mean: tuple[float, float, float],
        std: tuple[float, float, float],
    ) -> np.ndarray:
        """(H, W, 3) uint8 RGB -> (1, 3, E, E) float32 normalised encoder input."""
        ...

    def apply_coords(self, coords: np.ndarray, original_size: tuple[int, int]) -> np.ndarray:
        """Points (..., 2) XY in original pixels -> prompt-frame pixels (float64)."""
        ...

    def apply_boxes(self, boxes: np.ndarray, original_size: tuple[int, int]) -> np.ndarray:
        """Boxes (..., 4) XYXY in original pixels -> prompt-frame pixels."""
        ...

    def upsample(
        self,
        low: Any,
        input_size: tuple[int, int],
        original_size: tuple[int, int],
        exact: bool = False,
    ) -> Any:
        """Low-res logits (..., s, s) -> logits (..., H, W) in the original frame; ``exact``
        (torch only): bit for bit the reference's resizes, else the fast composed maps (see
        :mod:`samkit.postprocess`)."""
        ...

    def mask_prompt(
        self, mask: np.ndarray, original_size: tuple[int, int], value: float = 20.0
    ) -> np.ndarray:
        """A binary (H, W) mask in the original frame -> a (1, s, s) low-res logits prompt."""
        ...


@dataclass(frozen=True)
class ResizeLongestPad:
    """Resize the longest side to ``encoder_side`` and pad bottom / right (SAM-1); prompts in a
    frame of side ``prompt_side`` (default: ``encoder_side``) resized the same way; low-res
    logits of side ``low_res`` (default: ``prompt_side // 4``) covering the prompt frame."""

    encoder_side: int = 1024
    prompt_side: int = 0
    low_res: int = 0

    def __post_init__(self) -> None:
        if self.encoder_side < 1:
            raise SamkitError(f"encoder_side must be >= 1, got {self.encoder_side}")
        if not self.prompt_side:
            object.__setattr__(self, "prompt_side", self.encoder_side)
        if not self.low_res:
            object.__setattr__(self, "low_res", self.prompt_side // 4)

    def input_size(self, original_size: tuple[int, int]) -> tuple[int, int]:
        return transforms.preprocess_shape(original_size[0], original_size[1], self.prompt_side)

    def encoder_input(
        self,
        image: np.ndarray,
        mean: tuple[float, float, float],
        std: tuple[float, float, float],
    ) -> np.ndarray:
        resized = transforms.resize_image(image, self.encoder_side)
        return transforms.normalize_pad(resized, self.encoder_side, mean, std)

    def apply_coords(self, coords: np.ndarray, original_size: tuple[int, int]) -> np.ndarray:
        return transforms.apply_coords(coords, original_size, self.prompt_side)

    def apply_boxes(self, boxes: np.ndarray, original_size: tuple[int, int]) -> np.ndarray:
        return transforms.apply_boxes(boxes, original_size, self.prompt_side)

    def upsample(
        self,
        low: Any,
        input_size: tuple[int, int],
        original_size: tuple[int, int],
        exact: bool = False,
    ) -> Any:
        from samkit.postprocess import upsample_exact, upsample_fast

        resize = upsample_exact if exact else upsample_fast
        return resize(low, input_size, original_size, self.prompt_side)

    def mask_prompt(
        self, mask: np.ndarray, original_size: tuple[int, int], value: float = 20.0
    ) -> np.ndarray:
        return transforms.mask_to_logits_prompt(
            mask, original_size, self.prompt_side, value, low_res=self.low_res
        )


@dataclass(frozen=True)
class SquareResize:
    """Stretch the image to ``encoder_side`` x ``encoder_side`` (no padding; SAM 2.1's
    resize); prompts scale per axis into a frame of side ``prompt_side`` (default:
    ``encoder_side``) that the image fills; low-res logits of side ``low_res`` (default
    ``prompt_side // 4``) go to the original size through the prompt frame."""

    encoder_side: int = 1024
    prompt_side: int = 0
    low_res: int = 0

    def __post_init__(self) -> None:
        if self.encoder_side < 1:
            raise SamkitError(f"encoder_side must be >= 1, got {self.encoder_side}")
        if not self.prompt_side:
            object.__setattr__(self, "prompt_side", self.encoder_side)
        if not self.low_res:
            object.__setattr__(self, "low_res", self.prompt_side // 4)

    def input_size(self, original_size: tuple[int, int]) -> tuple[int, int]:
        return (self.prompt_side, self.prompt_side)

    def encoder_input(
        self,
        image: np.ndarray,
        mean: tuple[float, float, float],
        std: tuple[float, float, float],
    ) -> np.ndarray:
        side = self.encoder_side
        pil = Image.fromarray(np.ascontiguousarray(image))
        resized = np.asarray(pil.resize((side, side), Image.Resampling.BILINEAR))
        return transforms.normalize_pad(resized, side, mean, std)

    def apply_coords(self, coords: np.ndarray, original_size: tuple[int, int]) -> np.ndarray:
        out = np.array(coords, dtype=np.float64, copy=True)
        out[..., 0] *= self.prompt_side / original_size[1]
        out[..., 1] *= self.prompt_side / original_size[0]
        return out

    def apply_boxes(self, boxes: np.ndarray, original_size: tuple[int, int]) -> np.ndarray:
        boxes = np.asarray(boxes)
        pairs = self.apply_coords(boxes.reshape(-1, 2, 2), original_size)
        return pairs.reshape(boxes.shape)

    def upsample(
        self,
        low: Any,
        input_size: tuple[int, int],
        original_size: tuple[int, int],
        exact: bool = False,
    ) -> Any:
        from samkit.postprocess import upsample_exact, upsample_fast

        frame = (self.prompt_side, self.prompt_side)
        resize = upsample_exact if exact else upsample_fast
        return resize(low, frame, original_size, self.prompt_side)

    def mask_prompt(
        self, mask: np.ndarray, original_size: tuple[int, int], value: float = 20.0
    ) -> np.ndarray:
        img = Image.fromarray(mask.astype(np.uint8) * 255)
        small = img.resize((self.low_res, self.low_res), Image.Resampling.BILINEAR)
        prob = np.asarray(small, dtype=np.float32) / 255.0
        return ((prob > 0.5).astype(np.float32) * 2 - 1)[None] * value
