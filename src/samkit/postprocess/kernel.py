"""torch's CPU bilinear kernel (``align_corners=False``, float32), reproduced in NumPy.

The kernel computes, per output index ``d`` along an axis of ``n_in -> n_out``, the float32
scale ``n_in / n_out``, the source coordinate ``fma(scale, d + 0.5, -0.5)`` clamped at 0, the
neighbours ``i0 = floor(src)`` and ``i1 = min(i0 + 1, n_in - 1)``, and the weights
``w1 = src - i0``, ``w0 = 1 - w1``; a 2-D output pixel is ``lerp_h(lerp_w(row i0), lerp_w(row
i1))`` with ``lerp(a, b) = fma(w0, a, w1 * b)``, every step rounded to float32.
:func:`lerp` emulates the fused multiply-add in float64 (exact product, one rounding to
float32 after a rounding of the sum to float64; tests compare it bit for bit with torch).

With these, any pixel of the reference's two resizes can be computed on its own
(:mod:`samkit.postprocess.exact`), and :func:`upsample_exact_numpy` gives the whole map.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

__all__ = ["Taps", "lerp", "taps", "upsample_exact_numpy"]


@dataclass(frozen=True)
class Taps:
    """One axis of a bilinear resize: output ``d`` reads sources ``i0[d]``, ``i1[d]`` with
    float32 weights ``w0[d]``, ``w1[d]``. Arrays ``(n_out,)``."""

    i0: np.ndarray
    i1: np.ndarray
    w0: np.ndarray
    w1: np.ndarray


@lru_cache(maxsize=64)
def taps(n_in: int, n_out: int) -> Taps:
    """The taps of a bilinear resize ``n_in -> n_out`` (``align_corners=False``)."""
    scale = np.float64(np.float32(n_in) / np.float32(n_out))
    src = (scale * (np.arange(n_out, dtype=np.float64) + 0.5) - 0.5).astype(np.float32)
    src = np.maximum(src, np.float32(0.0))
    i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    i1 = np.minimum(i0 + 1, n_in - 1)
    w1 = (src - i0.astype(np.float32)).astype(np.float32)
    w0 = (np.float32(1.0) - w1).astype(np.float32)
    for a in (i0, i1, w0, w1):
        a.setflags(write=False)
    return Taps(i0, i1, w0, w1)


def lerp(a: np.ndarray, b: np.ndarray, w0: np.ndarray, w1: np.ndarray) -> np.ndarray:
    """float32 ``fma(w0, a, w1 * b)`` elementwise (broadcasting), as the kernel rounds it."""
    wb = np.multiply(w1, b, dtype=np.float32)
    out = np.multiply(w0, a, dtype=np.float64)
    out += wb
    return out.astype(np.float32)


def upsample_exact_numpy(
    low: np.ndarray, input_size: tuple[int, int], original_size: tuple[int, int], image_size: int
) -> np.ndarray:
    """**exact** (see :mod:`samkit.postprocess`): low-res logits ``(N, s, s)`` float32 ->
    ``(N, H, W)`` float32, bit for bit the reference's two resizes, in NumPy."""
    x = np.asarray(low, dtype=np.float32)
    h, w = int(input_size[0]), int(input_size[1])
    r1, c1 = taps(x.shape[-2], image_size), taps(x.shape[-1], image_size)
    r2, c2 = taps(h, int(original_size[0])), taps(w, int(original_size[1]))
    # Step 1 (to the padded input, cropped to h x w): columns, then rows.
    cols = lerp(x[..., c1.i0[:w]], x[..., c1.i1[:w]], c1.w0[:w], c1.w1[:w])
    rw0, rw1 = r1.w0[:h, None], r1.w1[:h, None]
    mid = lerp(cols[..., r1.i0[:h], :], cols[..., r1.i1[:h], :], rw0, rw1)
    # Step 2 (to the original size): columns, then rows.
    cols = lerp(mid[..., c2.i0], mid[..., c2.i1], c2.w0, c2.w1)
    return lerp(cols[..., r2.i0, :], cols[..., r2.i1, :], r2.w0[:, None], r2.w1[:, None])
