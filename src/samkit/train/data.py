"""Training items from a labelled dataset: per image, the objects' soft targets on the decoder's
low-res grid and tight boxes in the model's input frame, plus either the cached image embedding
(frozen encoder) or the normalised input tensor (trainable encoder).

Frames: targets are ``(N, L, L)`` uint8 (0..255 = coverage of each cell by the mask) on the
padded input square's low-res grid (``L = image_size / 4``); boxes ``(N, 4)`` float32 XYXY in
input pixels (the resized image, long side ``image_size``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from samkit.datasets import Sample
from samkit.families.geometry import Geometry, ResizeLongestPad

__all__ = ["ImageItem", "lowres_targets", "prepare_item"]

logger = logging.getLogger("samkit")


@dataclass
class ImageItem:
    """One training image. ``key``: its content hash (the embedding store's key);
    ``image``: (1, 3, S, S) normalised input, kept only when the encoder trains."""

    key: str
    name: str
    targets: torch.Tensor
    boxes: np.ndarray
    original_size: tuple[int, int]
    input_size: tuple[int, int]
    image: torch.Tensor | None = None


def lowres_targets(masks: np.ndarray, geometry: Geometry | int) -> np.ndarray:
    """(N, H, W) bool masks in original pixels -> (N, L, L) uint8 coverage on the low-res grid
    of the prompt frame (area-averaged, 255 = fully inside). ``geometry``: the network's (an
    int is SAM-1's at that side); the image's valid region sits at the frame's top-left."""
    geometry = _geometry(geometry)
    n, height, width = masks.shape
    h, w = geometry.input_size((height, width))
    side, frame = geometry.low_res, geometry.prompt_side
    out = np.zeros((n, side, side), np.uint8)
    for i in range(n):
        resized = cv2.resize(masks[i].astype(np.float32), (w, h), interpolation=cv2.INTER_AREA)
        padded = np.zeros((frame, frame), np.float32)
        padded[:h, :w] = resized
        low = cv2.resize(padded, (side, side), interpolation=cv2.INTER_AREA)
        out[i] = np.clip(np.rint(low * 255), 0, 255).astype(np.uint8)
    return out


def prepare_item(
    sample: Sample, key: str, geometry: Geometry | int, keep: Sequence[int] | None = None
) -> ImageItem | None:
    """Targets and boxes of ``sample``'s instances (``keep``: indexes to use) in the frames of
    ``geometry`` (the network's; an int is SAM-1's at that side); None when the sample has no
    usable instance (an empty mask, or no instance at all)."""
    geometry = _geometry(geometry)
    insts = [
        sample.instances[i] for i in (keep if keep is not None else range(len(sample.instances)))
    ]
    insts = [inst for inst in insts if inst.area > 0]
    if not insts:
        return None
    masks = np.stack([inst.mask for inst in insts])
    boxes = np.stack([inst.box for inst in insts])
    size = (sample.height, sample.width)
    boxes_in = geometry.apply_boxes(boxes, size).astype(np.float32)
    return ImageItem(
        key=key,
        name=sample.name or str(sample.path),
        targets=torch.from_numpy(lowres_targets(masks, geometry)),
        boxes=boxes_in,
        original_size=size,
        input_size=geometry.input_size(size),
    )


def _geometry(geometry: Geometry | int) -> Geometry:
    return ResizeLongestPad(geometry) if isinstance(geometry, int) else geometry
