"""Mask resampling weights: low-res logits -> original-image logits as one linear map per axis.

SAM's post-processing is two bilinear resizes (``align_corners=False``): the low-res logits to
the padded model input, a crop to the resized image, then to the original size. Along each axis
both steps are linear, so they compose into one (out, low) matrix with at most three non-zero
weights per row (each output pixel reads two input-frame pixels, each of which reads two
adjacent low-res pixels). Applying the composed maps is far cheaper than running two resizes
over full-size intermediates, and equals them up to float rounding.

This module is NumPy only (the torch-free backends use it too); the torch application lives in
:func:`samkit.postprocess.upsample_fast` (torch and NumPy).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from samkit.errors import ArgumentError

__all__ = ["Bands", "axis_map", "bands", "resize_matrix"]


def resize_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) float64 weights of a bilinear resize with ``align_corners=False``
    (half-pixel centres, source index clamped at 0, no antialiasing).

    The source coordinates are rounded as torch's CPU kernel rounds them (float32 scale, one
    fused multiply-add, float32 weights), so applying the matrix reproduces ``F.interpolate``
    to the last bit or two rather than to ~1e-4.
    """
    scale = float(np.float32(n_in) / np.float32(n_out))
    src = ((np.arange(n_out) + 0.5) * scale - 0.5).astype(np.float32).astype(np.float64)
    src = np.maximum(src, 0.0)
    i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    i1 = np.minimum(i0 + 1, n_in - 1)
    lam = np.clip(src - i0, 0.0, 1.0).astype(np.float32)
    out = np.zeros((n_out, n_in))
    rows = np.arange(n_out)
    np.add.at(out, (rows, i0), (1.0 - lam).astype(np.float64))
    np.add.at(out, (rows, i1), lam.astype(np.float64))
    return out


@lru_cache(maxsize=64)
def axis_map(low: int, image_size: int, keep: int, out: int) -> np.ndarray:
    """(out, low) float64: ``low`` logits -> ``image_size`` (padded input), keep the first
    ``keep`` (the resized image), -> ``out`` pixels of the original image, along one axis."""
    if not 0 < keep <= image_size:
        raise ArgumentError(f"keep must be in [1, {image_size}], got {keep}")
    composed = resize_matrix(keep, out) @ resize_matrix(low, image_size)[:keep]
    composed.setflags(write=False)
    return composed


@dataclass(frozen=True)
class Bands:
    """An (out, low) axis map with few non-zeros per row, cut into chunks of ``size`` outputs.

    Chunk j computes outputs ``[j * size, (j + 1) * size)`` from the ``span`` consecutive
    sources ``index[j]``: ``out[chunk j] = weights[j] @ src[index[j]]``. Sources are numbered
    from ``first`` (the first one any weight reads; ``last`` is one past the final one), and
    the last chunk may run past ``out`` with zero weights.
    """

    index: np.ndarray  # (chunks, span) int64
    weights: np.ndarray  # (chunks, size, span) float32
    first: int
    last: int


def _chunk_size(n: int) -> int:
    """A chunk length that divides ``n`` when one exists near 64 (then no padded outputs)."""
    if n <= 96:
        return n
    for size in (64, 72, 60, 80, 56, 48, 90, 96, 50, 45, 40, 100, 120, 36, 32, 128):
        if n % size == 0:
            return size
    return 64


@lru_cache(maxsize=64)
def bands(low: int, image_size: int, keep: int, out: int) -> Bands:
    """:func:`axis_map` in chunked banded form (see :class:`Bands`)."""
    full = axis_map(low, image_size, keep, out)
    used = np.nonzero(full.any(axis=0))[0]
    first, last = int(used[0]), int(used[-1]) + 1
    full = full[:, first:last]
    size = _chunk_size(out)
    n_chunks = -(-out // size)
    padded = np.zeros((n_chunks * size, full.shape[1]))
    padded[:out] = full
    chunks = padded.reshape(n_chunks, size, -1)
    starts = np.zeros(n_chunks, dtype=np.int64)
    ends = np.ones(n_chunks, dtype=np.int64)
    for j, chunk in enumerate(chunks):
        cols = np.nonzero(chunk.any(axis=0))[0]
        if cols.size:
            starts[j], ends[j] = cols[0], cols[-1] + 1
    span = int((ends - starts).max())
    # A window that would run past the last source is shifted back (its extra weights are 0).
    starts = np.minimum(starts, full.shape[1] - span)
    index = starts[:, None] + np.arange(span)
    weights = np.take_along_axis(
        chunks, np.broadcast_to(index[:, None, :], (n_chunks, size, span)), 2
    )
    index.setflags(write=False)
    weights = weights.astype(np.float32)
    weights.setflags(write=False)
    return Bands(index, weights, first, last)
