"""Pre- and post-processing as pure functions: resize the longest side, normalise, pad,
map coordinates and boxes into the model's input frame, and map mask logits back.

Frames: "original" is the user's image (H, W); "input" is the resized image (h, w) with
``max(h, w) == image_size`` placed at the top-left of the padded square model input.
The image-side functions need only NumPy and Pillow; the mask functions take torch tensors.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from samkit.errors import SourceError

if TYPE_CHECKING:
    import torch


def preprocess_shape(height: int, width: int, long_side: int) -> tuple[int, int]:
    """Size (h, w) of an (height, width) image resized so its longest side is ``long_side``,
    rounded half up as the reference does."""
    scale = long_side / max(height, width)
    return int(height * scale + 0.5), int(width * scale + 0.5)


def resize_image(image: np.ndarray, long_side: int) -> np.ndarray:
    """(H, W, 3) uint8 -> (h, w, 3) uint8 with Pillow's bilinear filter (antialiased when
    shrinking), exactly as the reference resizes.

    Raises:
        SourceError: the image is so thin that a side would shrink to 0 pixels (an aspect
            ratio beyond ``2 * long_side`` : 1, e.g. 10000 x 1 for a 1024 input).
    """
    h, w = preprocess_shape(image.shape[0], image.shape[1], long_side)
    if h < 1 or w < 1:
        raise SourceError(
            f"image of {image.shape[1]}x{image.shape[0]} pixels (width x height) is too thin for "
            f"the model: resized to a long side of {long_side} its short side is 0 pixels "
            f"(aspect ratio at most {2 * long_side}:1)"
        )
    if (h, w) == image.shape[:2]:
        return np.ascontiguousarray(image)
    pil = Image.fromarray(np.ascontiguousarray(image))
    return np.asarray(pil.resize((w, h), Image.Resampling.BILINEAR))


def normalize_pad(
    image: np.ndarray,
    size: int,
    mean: tuple[float, float, float],
    std: tuple[float, float, float],
) -> np.ndarray:
    """(h, w, 3) uint8 RGB -> (1, 3, size, size) float32, normalised, zero-padded bottom/right."""
    h, w = image.shape[:2]
    out = np.zeros((1, 3, size, size), dtype=np.float32)
    chw = image.transpose(2, 0, 1).astype(np.float32)
    m = np.asarray(mean, dtype=np.float32)[:, None, None]
    s = np.asarray(std, dtype=np.float32)[:, None, None]
    out[0, :, :h, :w] = (chw - m) / s
    return out


def apply_coords(coords: np.ndarray, original_size: tuple[int, int], long_side: int) -> np.ndarray:
    """Points (..., 2) as (x, y) in original pixels -> input-frame pixels (float)."""
    old_h, old_w = original_size
    new_h, new_w = preprocess_shape(old_h, old_w, long_side)
    out = np.array(coords, dtype=np.float64, copy=True)
    out[..., 0] *= new_w / old_w
    out[..., 1] *= new_h / old_h
    return out


def apply_boxes(boxes: np.ndarray, original_size: tuple[int, int], long_side: int) -> np.ndarray:
    """Boxes (..., 4) XYXY in original pixels -> input-frame pixels."""
    boxes = np.asarray(boxes)
    shape = boxes.shape
    return apply_coords(boxes.reshape(-1, 2, 2), original_size, long_side).reshape(shape)


def postprocess_masks(
    masks: torch.Tensor,
    input_size: tuple[int, int],
    original_size: tuple[int, int],
    image_size: int,
) -> torch.Tensor:
    """Low-res logits (..., h', w') -> logits (..., H, W) in the original frame, contiguous:
    :func:`samkit.postprocess.upsample_fast` (kept under this name for callers of the
    transforms API)."""
    from samkit.postprocess import upsample_fast

    return upsample_fast(masks, input_size, original_size, image_size)


def mask_to_logits_prompt(
    mask: np.ndarray,
    original_size: tuple[int, int],
    image_size: int,
    value: float = 20.0,
    low_res: int | None = None,
) -> np.ndarray:
    """A binary mask (H, W) in the original frame -> a (1, 256, 256)-style low-res prompt.

    The mask goes through the same geometry as the image (resize longest side, pad) and is
    scaled to +/- ``value`` logits, so it can stand in for a previous call's logits.
    ``low_res``: side of the prompt (default ``image_size // 4``, SAM-1's).
    """
    h, w = preprocess_shape(original_size[0], original_size[1], image_size)
    low = low_res or image_size // 4
    img = Image.fromarray(mask.astype(np.uint8) * 255).resize((w, h), Image.Resampling.BILINEAR)
    padded = np.zeros((image_size, image_size), dtype=np.float32)
    padded[:h, :w] = np.asarray(img, dtype=np.float32) / 255.0
    small = Image.fromarray(padded).resize((low, low), Image.Resampling.BILINEAR)
    prob = np.asarray(small, dtype=np.float32)
    return ((prob > 0.5).astype(np.float32) * 2 - 1)[None] * value
