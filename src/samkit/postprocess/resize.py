"""Upsampling low-res mask logits to the original frame: exact (the reference's two torch
resizes), fast (composed banded maps, torch or NumPy) and the export graph's version.

See :mod:`samkit.postprocess` for the exactness contract of each.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

import numpy as np

from samkit import resample

if TYPE_CHECKING:
    import torch

__all__ = ["upsample_exact", "upsample_fast", "upsample_graph"]

Array = TypeVar("Array", "torch.Tensor", np.ndarray)


def upsample_exact(
    low: torch.Tensor, input_size: tuple[int, int], original_size: tuple[int, int], image_size: int
) -> torch.Tensor:
    """**exact**: low-res logits ``(..., s, s)`` float32 torch -> logits ``(..., H, W)``, bit for
    bit the reference's resize to ``S x S`` / crop to ``input_size`` / resize to
    ``original_size``.

    The first resize only computes the rows and columns the crop keeps: bilinear interpolation
    (``align_corners=False``) computes each output pixel from the scale factor and its two
    source neighbours, so a slice of the low-res logits resized by the same integer factor (with
    two rows / columns of margin, so that no needed neighbour is clamped) gives identical values.
    """
    import torch.nn.functional as F

    lead = low.shape[:-2]
    x = low.reshape(-1, 1, low.shape[-2], low.shape[-1])
    factor = image_size // low.shape[-1]
    rows = min(x.shape[-2], math.ceil(input_size[0] / factor) + 2)
    cols = min(x.shape[-1], math.ceil(input_size[1] / factor) + 2)
    x = F.interpolate(
        x[..., :rows, :cols], (rows * factor, cols * factor), mode="bilinear", align_corners=False
    )
    x = x[..., : input_size[0], : input_size[1]]
    out = F.interpolate(x, tuple(original_size), mode="bilinear", align_corners=False)
    return out.reshape(*lead, *out.shape[-2:])


def upsample_graph(
    masks: torch.Tensor, orig_im_size: torch.Tensor, image_size: int
) -> torch.Tensor:
    """The exported decoder graph's upsampling (traceable, dynamic ``orig_im_size`` (2,) float
    (H, W)): ``(B, M, s, s)`` -> ``(B, M, H, W)``, the reference's two resizes in full. The crop
    size is rounded in float64 exactly like :func:`samkit.transforms.preprocess_shape`."""
    import torch
    import torch.nn.functional as F

    s = image_size
    masks = F.interpolate(masks, size=(s, s), mode="bilinear", align_corners=False)
    size = orig_im_size.to(torch.float64)
    scale = torch.tensor(float(s), dtype=torch.float64) / size.max()
    crop = torch.floor(size * scale + 0.5).to(torch.int64)
    masks = masks[..., : crop[0], : crop[1]]
    out = orig_im_size.to(torch.int64)
    # 0-d tensors as sizes keep the output size dynamic in the traced graph
    size_hw = (out[0], out[1])
    return F.interpolate(masks, size=size_hw, mode="bilinear", align_corners=False)  # type: ignore[arg-type]


def upsample_fast(
    low: Array, input_size: tuple[int, int], original_size: tuple[int, int], image_size: int
) -> Array:
    """**fast**: low-res logits ``(..., s', s')`` -> logits ``(..., H, W)`` contiguous, same
    type (torch tensor or NumPy float32 array) and device.

    Both resizes and the crop as one composed linear map per axis (:mod:`samkit.resample`),
    applied as small banded matrix products: columns first, on the low-res rows the crop keeps;
    then rows, a chunk of output rows at a time. No full-size intermediate.
    """
    low_h, low_w = int(low.shape[-2]), int(low.shape[-1])
    height, width = int(original_size[0]), int(original_size[1])
    geometry = (low_h, low_w, image_size, int(input_size[0]), int(input_size[1]), height, width)
    if isinstance(low, np.ndarray):
        return _fast_numpy(np.asarray(low, dtype=np.float32), geometry)
    return _fast_torch(low, geometry)


class _Bands(NamedTuple):
    """:class:`samkit.resample.Bands` as arrays of the logits' library and device."""

    window: Any  # (chunks, span) int64
    weights: Any  # (chunks, size, span)
    first: int
    last: int


def _numpy_bands(geometry: tuple[int, ...]) -> tuple[_Bands, _Bands]:
    low_h, low_w, image_size, h, w, height, width = geometry
    r = resample.bands(low_h, image_size, h, height)
    c = resample.bands(low_w, image_size, w, width)
    return _Bands(r.index, r.weights, r.first, r.last), _Bands(c.index, c.weights, c.first, c.last)


@lru_cache(maxsize=32)
def _torch_bands(geometry: tuple[int, ...], device: Any, dtype: Any) -> tuple[_Bands, _Bands]:
    import torch

    out = []
    for b in _numpy_bands(geometry):
        window = torch.tensor(b.window, device=device)
        weights = torch.tensor(b.weights, dtype=dtype, device=device)
        out.append(_Bands(window, weights, b.first, b.last))
    return out[0], out[1]


def _fast_torch(masks: torch.Tensor, geometry: tuple[int, ...]) -> torch.Tensor:
    import torch

    low_h, low_w, height, width = geometry[0], geometry[1], geometry[5], geometry[6]
    rows, cols = _torch_bands(geometry, masks.device, masks.dtype)
    lead = masks.shape[:-2]
    if masks.numel() == 0:
        return masks.new_zeros(*lead, height, width)
    x = masks.reshape(-1, low_h, low_w)[:, rows.first : rows.last, cols.first : cols.last]
    n, r = x.shape[0], x.shape[1]
    # Columns: (chunks, N * r, span) @ (chunks, span, size) -> (N, r, W).
    g = x[:, :, cols.window].permute(2, 0, 1, 3).reshape(cols.weights.shape[0], n * r, -1)
    t = torch.bmm(g, cols.weights.transpose(1, 2)).permute(1, 0, 2).reshape(n, r, -1)
    # Rows: (chunks, size, span) @ (N, chunks, span, W) -> (N, chunks * size, W).
    out = torch.matmul(rows.weights, t[:, rows.window, :width]).view(n, -1, width)
    if out.shape[1] != height:
        out = out[:, :height].contiguous()
    return out.view(*lead, height, width)


def _fast_numpy(masks: np.ndarray, geometry: tuple[int, ...]) -> np.ndarray:
    low_h, low_w, height, width = geometry[0], geometry[1], geometry[5], geometry[6]
    rows, cols = _numpy_bands(geometry)
    lead = masks.shape[:-2]
    if masks.size == 0:
        return np.zeros((*lead, height, width), dtype=np.float32)
    x = masks.reshape(-1, low_h, low_w)[:, rows.first : rows.last, cols.first : cols.last]
    n, r = x.shape[0], x.shape[1]
    g = x[:, :, cols.window].transpose(2, 0, 1, 3).reshape(cols.weights.shape[0], n * r, -1)
    t = np.matmul(g, cols.weights.transpose(0, 2, 1)).transpose(1, 0, 2).reshape(n, r, -1)
    out = np.matmul(rows.weights, t[:, rows.window, :width]).reshape(n, -1, width)
    return np.ascontiguousarray(out[:, :height]).reshape(*lead, height, width)
