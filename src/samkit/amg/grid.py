"""Where "segment everything" looks: point grids, crop boxes, and mapping crop results back.

Frames: a crop box is XYXY in original-image pixels (``x1``/``y1`` exclusive, as a slice);
points are ``(x, y)`` and mask boxes XYXY with an inclusive max (see :mod:`samkit.masks`).
"""

from __future__ import annotations

import math
from itertools import product
from typing import TYPE_CHECKING, Any

import numpy as np

from samkit.errors import ArgumentError
from samkit.masks import mask_to_rle, rle_to_mask

if TYPE_CHECKING:
    from samkit.amg.records import Candidates

__all__ = [
    "boxes_near_crop_edge",
    "build_all_layer_point_grids",
    "build_point_grid",
    "generate_crop_boxes",
    "uncrop_candidates",
    "uncrop_rle",
]


def build_point_grid(n_per_side: int) -> np.ndarray:
    """``(n*n, 2)`` float64 points ``(x, y)`` in [0, 1], cell centres of an n x n grid,
    x varying fastest."""
    offset = 1 / (2 * n_per_side)
    side = np.linspace(offset, 1 - offset, n_per_side)
    xs = np.tile(side[None, :], (n_per_side, 1))
    ys = np.tile(side[:, None], (1, n_per_side))
    return np.stack([xs, ys], axis=-1).reshape(-1, 2)


def build_all_layer_point_grids(
    n_per_side: int, n_layers: int, scale_per_layer: int
) -> list[np.ndarray]:
    """One grid per crop layer; layer i has ``int(n_per_side / scale_per_layer**i)`` points
    per side."""
    return [build_point_grid(int(n_per_side / (scale_per_layer**i))) for i in range(n_layers + 1)]


def generate_crop_boxes(
    im_size: tuple[int, int], n_layers: int, overlap_ratio: float
) -> tuple[list[list[int]], list[int]]:
    """Crop boxes XYXY (original pixels) and their layer index.

    Layer 0 is the whole image; layer i (1-based) tiles the image with ``2**i`` crops per side
    that overlap by ``int(overlap_ratio * short_side * 2 / 2**i)`` pixels.
    """
    im_h, im_w = im_size
    short_side = min(im_h, im_w)
    boxes: list[list[int]] = [[0, 0, im_w, im_h]]
    layers = [0]

    def crop_len(orig_len: int, n_crops: int, overlap: int) -> int:
        return math.ceil((overlap * (n_crops - 1) + orig_len) / n_crops)

    for i_layer in range(n_layers):
        n_side = 2 ** (i_layer + 1)
        overlap = int(overlap_ratio * short_side * (2 / n_side))
        crop_w = crop_len(im_w, n_side, overlap)
        crop_h = crop_len(im_h, n_side, overlap)
        xs = [int((crop_w - overlap) * i) for i in range(n_side)]
        ys = [int((crop_h - overlap) * i) for i in range(n_side)]
        for x0, y0 in product(xs, ys):
            boxes.append([x0, y0, min(x0 + crop_w, im_w), min(y0 + crop_h, im_h)])
            layers.append(i_layer + 1)
    return boxes, layers


def boxes_near_crop_edge(
    boxes: np.ndarray, crop_box: list[int], orig_box: list[int], atol: float = 20.0
) -> np.ndarray:
    """``(N,)`` bool: which boxes ``(N, 4)`` (XYXY in the crop frame) come within ``atol``
    pixels of an edge of the crop that is not also an edge of the image."""
    x0, y0 = crop_box[0], crop_box[1]
    uncropped = (boxes + np.array([x0, y0, x0, y0])).astype(np.float32)
    crop = np.asarray(crop_box, dtype=np.float32)[None]
    orig = np.asarray(orig_box, dtype=np.float32)[None]
    near_crop = np.abs(uncropped - crop) <= np.float32(atol)
    near_image = np.abs(uncropped - orig) <= np.float32(atol)
    return np.any(near_crop & ~near_image, axis=1)


def uncrop_rle(
    rle: dict[str, Any], crop_box: list[int], orig_h: int, orig_w: int
) -> dict[str, Any]:
    """An uncompressed RLE of a mask in the crop frame -> the same mask placed in the
    ``(orig_h, orig_w)`` image (zeros outside the crop)."""
    x0, y0, x1, y1 = crop_box
    if x0 == 0 and y0 == 0 and x1 == orig_w and y1 == orig_h:
        return rle
    full = np.zeros((orig_h, orig_w), dtype=bool)
    full[y0:y1, x0:x1] = rle_to_mask(rle)
    return mask_to_rle(full)


def uncrop_candidates(
    data: Candidates, crop_box: list[int], orig_size: tuple[int, int]
) -> Candidates:
    """A finished crop's candidates (RLEs, boxes, points in the crop's frame) moved into the
    original image's frame, each row stamped with ``crop_box`` (XYXY); in place, returned."""
    x0, y0 = crop_box[0], crop_box[1]
    data.rles = [uncrop_rle(r, crop_box, orig_size[0], orig_size[1]) for r in data.rles]
    data.boxes = data.boxes + np.array([x0, y0, x0, y0])
    data.points = data.points + np.array([x0, y0], dtype=np.float64)
    data.crop_boxes = np.tile(np.asarray(crop_box, dtype=np.int64), (len(data), 1))
    return data


def layer_point_grids(
    points_per_side: int | None,
    point_grids: list[np.ndarray] | None,
    crop_n_layers: int,
    downscale: int,
) -> list[np.ndarray]:
    """The generator's point grid per crop layer, from exactly one of ``points_per_side`` (with
    ``crop_n_points_downscale_factor`` ``downscale``) or the user's ``point_grids`` (checked:
    one ``(N, 2)`` grid in [0, 1] per layer at least)."""
    if (points_per_side is None) == (point_grids is None):
        raise ArgumentError("give exactly one of points_per_side or point_grids")
    if int(crop_n_layers) != crop_n_layers or crop_n_layers < 0:
        raise ArgumentError(f"crop_n_layers must be an int >= 0, got {crop_n_layers!r}")
    if points_per_side is not None:
        if int(points_per_side) != points_per_side or points_per_side < 1:
            raise ArgumentError(f"points_per_side must be a positive int, got {points_per_side!r}")
        if downscale < 1:
            raise ArgumentError(f"crop_n_points_downscale_factor must be >= 1, got {downscale!r}")
        return build_all_layer_point_grids(int(points_per_side), int(crop_n_layers), downscale)
    grids = [check_grid(g, i) for i, g in enumerate(point_grids or [])]
    if len(grids) < crop_n_layers + 1:
        raise ArgumentError(
            f"point_grids must hold one grid per crop layer ({crop_n_layers + 1}), got {len(grids)}"
        )
    return grids


def check_grid(grid: np.ndarray, index: int) -> np.ndarray:
    """A user grid ``(N, 2)`` ``(x, y)`` in [0, 1] as float64, or an :class:`ArgumentError`
    naming ``point_grids[index]``."""
    arr = np.asarray(grid, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ArgumentError(
            f"point_grids[{index}] must have shape (N, 2) as (x, y) in [0, 1], got {arr.shape}"
        )
    if arr.size and (arr.min() < 0 or arr.max() > 1):
        raise ArgumentError(f"point_grids[{index}] must hold points normalised to [0, 1]")
    return arr
