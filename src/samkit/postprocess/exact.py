"""**exact** stability scores, boxes and masks of segment everything, computed only where a
pixel's side of a threshold is not already decided by the low-res logits.

Every full-resolution logit of the reference's two bilinear resizes is, up to float rounding,
a convex combination of at most 3 x 3 neighbouring low-res logits (its *support*). Pixels are
grouped into tiles that share one low-res anchor ``(j, k)`` (support within rows ``j..j+2`` and
columns ``k..k+2``); a tile whose support lies entirely above ``T + eps`` has every pixel
``> T``, one entirely at or below ``T - eps`` has none (``eps`` is far larger than the
rounding, far smaller than anything a threshold could tell apart). Only the undecided tiles,
a band along each threshold's contour, are read pixel by pixel: first from the two resizes'
composed weights (:func:`_approx`, 9 low-res logits per tile, within ~1e-6 of the logits'
range of the exact values), and in the few tiles where such a value lies within ``eps`` of a
threshold with the NumPy emulation of torch's kernel (:mod:`samkit.postprocess.kernel`), bit
for bit the reference's values (:func:`_values`). Counts, boxes and masks are therefore the
reference's, at a fraction of the work. :mod:`samkit.postprocess.exact_filter` defers even
that work to the masks segment everything keeps.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from samkit.postprocess.kernel import lerp, taps

__all__ = ["Geometry", "exact_masks", "mask_rle"]

# Relative margin of the tile decisions: the kernel's rounding is ~1e-7 of the logits' range.
_EPS = 2.0**-16


@dataclass(frozen=True)
class _Axis:
    """One axis of the two resizes, cut into tiles. Arrays per tile ``(n,)`` or padded per
    tile ``(n, g)``: full-res pixels ``pix`` (``valid`` marks padding), the local input-frame
    indices ``u0`` / ``u1`` and float32 weights ``v0`` / ``v1`` of each pixel (second resize),
    the input-frame pixels ``inp`` with their low-res taps ``r0`` / ``r1`` and weights
    ``w0`` / ``w1`` (first resize); ``lo`` / ``hi`` the low-res support, ``start`` / ``size``
    the tile's full-res pixel range."""

    lo: np.ndarray
    hi: np.ndarray
    start: np.ndarray
    size: np.ndarray
    pix: np.ndarray
    valid: np.ndarray
    u0: np.ndarray
    u1: np.ndarray
    v0: np.ndarray
    v1: np.ndarray
    r0: np.ndarray
    r1: np.ndarray
    w0: np.ndarray
    w1: np.ndarray
    cw: np.ndarray


def _composed(first: Any, second: Any, pix: np.ndarray, lo: np.ndarray) -> np.ndarray:
    """``(n, g, 3)`` float32: the weight of low-res index ``lo + d`` in each tile pixel's value,
    both resizes composed (exact in real arithmetic; the kernel rounds each step)."""
    out = np.zeros((*pix.shape, 3), dtype=np.float64)
    anchor = lo[:, None]
    for a, v in ((second.i0[pix], second.w0[pix]), (second.i1[pix], second.w1[pix])):
        for i, w in ((first.i0[a], first.w0[a]), (first.i1[a], first.w1[a])):
            d = i - anchor
            if (d < 0).any() or (d > 2).any():
                raise RuntimeError("a tile's support exceeds its 3 x 3 low-res window")
            np.add.at(out, (*np.indices(pix.shape), d), v.astype(np.float64) * w)
    return out.astype(np.float32)


@lru_cache(maxsize=16)
def _axis(low: int, image_size: int, keep: int, out: int) -> _Axis:
    first, second = taps(low, image_size), taps(keep, out)
    a0, a1 = second.i0, second.i1  # (out,) input-frame rows of each output row
    lo = first.i0[a0]
    hi = np.maximum(first.i1[a1], first.i1[a0])
    anchors, start, size = np.unique(lo, return_index=True, return_counts=True)
    g = int(size.max())
    pix = np.minimum(start[:, None] + np.arange(g), (start + size - 1)[:, None])
    valid = np.arange(g)[None, :] < size[:, None]
    a_first = a0[start]
    n_inp = int((a1[start + size - 1] - a_first).max()) + 1
    inp = np.minimum(a_first[:, None] + np.arange(n_inp), keep - 1)
    tile_hi = np.maximum.reduceat(hi, start)
    return _Axis(
        lo=anchors.astype(np.int64),
        hi=tile_hi.astype(np.int64),
        start=start.astype(np.int64),
        size=size.astype(np.int64),
        pix=pix,
        valid=valid,
        u0=a0[pix] - a_first[:, None],
        u1=a1[pix] - a_first[:, None],
        v0=second.w0[pix],
        v1=second.w1[pix],
        r0=first.i0[inp],
        r1=first.i1[inp],
        w0=first.w0[inp],
        w1=first.w1[inp],
        cw=_composed(first, second, pix, anchors),
    )


@dataclass(frozen=True)
class Geometry:
    """Low-res side ``low``, model input side ``image_size``, resized image ``input_size``
    (h, w) and original ``original_size`` (H, W) of one image (or crop)."""

    low: int
    image_size: int
    input_size: tuple[int, int]
    original_size: tuple[int, int]

    def axes(self) -> tuple[_Axis, _Axis]:
        rows = _axis(self.low, self.image_size, self.input_size[0], self.original_size[0])
        cols = _axis(self.low, self.image_size, self.input_size[1], self.original_size[1])
        return rows, cols

    def used_low_res(self) -> tuple[int, int]:
        """Rows and columns ``(r, c)`` of the low-res logits any output pixel reads: the
        functions here take ``low[:, :r, :c]`` as well as the whole map."""
        rows, cols = self.axes()
        return int(rows.hi.max()) + 1, int(cols.hi.max()) + 1


@lru_cache(maxsize=32)
def emulation_matches_torch(geometry: Geometry) -> bool:
    """Whether :mod:`samkit.postprocess.kernel` reproduces torch's resizes bit for bit for this
    geometry with the current thread count (torch picks kernel code paths by shape; checked
    once per geometry on random logits)."""
    import torch

    from samkit.postprocess.kernel import upsample_exact_numpy
    from samkit.postprocess.resize import upsample_exact

    gen = torch.Generator().manual_seed(0)
    low = torch.randn(1, geometry.low, geometry.low, generator=gen) * 20
    args = (geometry.input_size, geometry.original_size, geometry.image_size)
    expected = upsample_exact(low, *args).numpy()
    return bool(np.array_equal(upsample_exact_numpy(low.numpy(), *args), expected))


def _window3(x: np.ndarray, axis: int, op: Any) -> np.ndarray:
    """``op`` (``np.minimum`` or ``np.maximum``) of ``(N, R, C)`` ``x`` over positions ``i, i + 1,
    i + 2`` (clipped to the last) along ``axis`` (1 or 2)."""
    n = x.shape[axis]

    def part(a: int, b: int) -> tuple[slice, ...]:
        return (slice(None), slice(a, b)) if axis == 1 else (slice(None), slice(None), slice(a, b))

    out = np.empty_like(x)
    op(x[part(0, n - 1)], x[part(1, n)], out=out[part(0, n - 1)])
    out[part(n - 1, n)] = x[part(n - 1, n)]
    if n > 2:
        op(out[part(0, n - 2)], x[part(2, n)], out=out[part(0, n - 2)])
    return out


def _pick(x: np.ndarray, idx: np.ndarray, axis: int) -> np.ndarray:
    """``x`` at indices ``idx`` along ``axis``, a view where they are consecutive."""
    if len(idx) and idx[-1] - idx[0] + 1 == len(idx):
        sl = slice(int(idx[0]), int(idx[-1]) + 1)
        return x[:, sl] if axis == 1 else x[:, :, sl]
    return np.take(x, idx, axis=axis)


def _support_range(low: np.ndarray, rows: _Axis, cols: _Axis) -> tuple[np.ndarray, np.ndarray]:
    """Per mask and tile ``(N, tr, tc)`` the min and max low-res logit over a superset of the
    tile's support (rows ``lo..lo+2``, columns likewise)."""
    mn = _pick(_window3(_pick(_window3(low, 1, np.minimum), rows.lo, 1), 2, np.minimum), cols.lo, 2)
    mx = _pick(_window3(_pick(_window3(low, 1, np.maximum), rows.lo, 1), 2, np.maximum), cols.lo, 2)
    return mn, mx


def _evaluate(
    low: np.ndarray, rows: _Axis, cols: _Axis, m: np.ndarray, tr: np.ndarray, tc: np.ndarray
) -> np.ndarray:
    """Exact logits ``(U, gr, gc)`` float32 of the pixels of tiles ``(tr[u], tc[u])`` of masks
    ``m[u]`` (padded pixels repeat a real one)."""
    r0, r1 = rows.r0[tr][:, :, None], rows.r1[tr][:, :, None]
    c0, c1 = cols.r0[tc][:, None, :], cols.r1[tc][:, None, :]
    mm = m[:, None, None]
    cw0, cw1 = cols.w0[tc][:, None, :], cols.w1[tc][:, None, :]
    top = lerp(low[mm, r0, c0], low[mm, r0, c1], cw0, cw1)
    bottom = lerp(low[mm, r1, c0], low[mm, r1, c1], cw0, cw1)
    mid = lerp(top, bottom, rows.w0[tr][:, :, None], rows.w1[tr][:, :, None])  # (U, nA, nB)
    u0, u1 = cols.u0[tc][:, None, :], cols.u1[tc][:, None, :]
    left = np.take_along_axis(mid, np.broadcast_to(u0, (*mid.shape[:2], u0.shape[-1])), 2)
    right = np.take_along_axis(mid, np.broadcast_to(u1, (*mid.shape[:2], u1.shape[-1])), 2)
    q = lerp(left, right, cols.v0[tc][:, None, :], cols.v1[tc][:, None, :])  # (U, nA, gc)
    a0, a1 = rows.u0[tr][:, :, None], rows.u1[tr][:, :, None]
    up = np.take_along_axis(q, np.broadcast_to(a0, (q.shape[0], a0.shape[1], q.shape[2])), 1)
    down = np.take_along_axis(q, np.broadcast_to(a1, (q.shape[0], a1.shape[1], q.shape[2])), 1)
    return lerp(up, down, rows.v0[tr][:, :, None], rows.v1[tr][:, :, None])


def _approx(
    low: np.ndarray, rows: _Axis, cols: _Axis, m: np.ndarray, tr: np.ndarray, tc: np.ndarray
) -> np.ndarray:
    """Logits ``(U, gr, gc)`` float32 of the same pixels as :func:`_evaluate`, from the composed
    weights: within ~1e-6 of the logits' range of the exact values, at a fraction of the cost."""
    # (U, 3, 3) low-res support of each tile, gathered from the flat array (its last row or
    # column repeated past the edge, where the weights are 0)
    n_r, n_c = low.shape[1], low.shape[2]
    d = np.arange(3)
    r = np.minimum(rows.lo[tr][:, None] + d, n_r - 1)
    c = np.minimum(cols.lo[tc][:, None] + d, n_c - 1)
    flat = (m[:, None, None] * n_r + r[:, :, None]) * n_c + c[:, None, :]
    patch = low.reshape(-1).take(flat)
    return np.matmul(np.matmul(rows.cw[tr], patch), cols.cw[tc].transpose(0, 2, 1))


def _margin(low: np.ndarray, thresholds: tuple[float, ...]) -> np.ndarray:
    """``(N,)`` float32 per mask: far larger than any rounding of the resizes, far smaller than
    anything a threshold could tell apart."""
    scale = np.maximum(np.abs(low).reshape(len(low), -1).max(1), max(abs(t) for t in thresholds))
    return (np.maximum(scale, 1.0) * _EPS).astype(np.float32)


def _values(
    low: np.ndarray,
    rows: _Axis,
    cols: _Axis,
    tiles: tuple[np.ndarray, np.ndarray, np.ndarray],
    levels: tuple[float, ...],
    margin: np.ndarray,
) -> np.ndarray:
    """Logits ``(U, gr, gc)`` float32 of tiles ``(m, tr, tc)`` that compare with every one of
    ``levels`` exactly as the reference's do: :func:`_approx` values, and :func:`_evaluate`'s
    (bit for bit) in the tiles where one lies within ``margin[m]`` of a level."""
    m, tr, tc = tiles
    values = _approx(low, rows, cols, m, tr, tc)
    eps = margin[m][:, None, None]
    near = np.zeros(len(m), dtype=bool)
    for t in levels:
        near |= (np.abs(values - np.float32(t)) <= eps).any((1, 2))
    if near.any():
        idx = np.flatnonzero(near)
        values[idx] = _evaluate(low, rows, cols, m[idx], tr[idx], tc[idx])
    return values


def _classify(
    low: np.ndarray, rows: _Axis, cols: _Axis, thresholds: tuple[float, ...]
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """For each threshold, the tiles ``(N, tr, tc)`` bool whose pixels are all above it
    (``above``) and those undecided for it (``open``); the rest have no pixel above."""
    mn, mx = _support_range(low, rows, cols)
    eps = _margin(low, thresholds)[:, None, None]
    above, open_ = [], []
    for t in thresholds:
        sure = mn > np.float32(t) + eps
        open_.append(~sure & (mx > np.float32(t) - eps))
        above.append(sure)
    return above, open_


def _any(masks: list[np.ndarray]) -> np.ndarray:
    out = masks[0].copy()
    for m in masks[1:]:
        out |= m
    return out


def _tile_boxes(above: np.ndarray, rows: _Axis, cols: _Axis) -> np.ndarray:
    """Boxes of the decided-above tiles; masks with none get an empty (inverted) box."""
    n = len(above)
    boxes = np.empty((n, 4), dtype=np.int64)
    big = np.iinfo(np.int64).max
    any_r: np.ndarray = np.any(above, axis=2)
    any_c: np.ndarray = np.any(above, axis=1)
    has = any_r.any(1)
    first_r, last_r = np.argmax(any_r, 1), any_r.shape[1] - 1 - np.argmax(any_r[:, ::-1], 1)
    first_c, last_c = np.argmax(any_c, 1), any_c.shape[1] - 1 - np.argmax(any_c[:, ::-1], 1)
    boxes[:, 0] = np.where(has, cols.start[first_c], big)
    boxes[:, 1] = np.where(has, rows.start[first_r], big)
    boxes[:, 2] = np.where(has, cols.start[last_c] + cols.size[last_c] - 1, -1)
    boxes[:, 3] = np.where(has, rows.start[last_r] + rows.size[last_r] - 1, -1)
    return boxes


def exact_masks(low: np.ndarray, geometry: Geometry, threshold: float) -> list[dict[str, Any]]:
    """Low-res logits ``(N, s, s)`` -> uncompressed COCO RLEs of ``logits > threshold`` in the
    ``original_size`` frame, **exact**. Each mask is built on the tiles of its box only and
    run-length encoded from there."""
    low = np.ascontiguousarray(low, dtype=np.float32)
    if len(low) == 0:
        return []
    rows, cols = geometry.axes()
    (above,), (undecided,) = _classify(low, rows, cols, (threshold,))
    out = []
    for i in range(len(low)):
        tr, tc = np.nonzero(undecided[i])
        hits = _evaluate(low, rows, cols, np.full(len(tr), i), tr, tc) > np.float32(threshold)
        out.append(mask_rle(above[i], undecided[i], (tr, tc, hits), rows, cols, geometry))
    return out


def mask_rle(
    above: np.ndarray,
    undecided: np.ndarray,
    evaluated: tuple[np.ndarray, np.ndarray, np.ndarray],
    rows: _Axis,
    cols: _Axis,
    geometry: Geometry,
) -> dict[str, Any]:
    """RLE of one mask from its tiles ``(tr, tc)`` decided above the threshold (``above``), its
    ``undecided`` tiles and ``evaluated`` = (tile rows ``(U,)``, tile columns ``(U,)``, pixels
    above the threshold ``(U, gr, gc)`` bool) for a set of tiles holding every undecided one;
    built on the tile rows / columns that can hold a pixel."""
    h, w = geometry.original_size
    live = above | undecided
    live_r, live_c = np.flatnonzero(live.any(1)), np.flatnonzero(live.any(0))
    if len(live_r) == 0:
        return {"size": [h, w], "counts": [h * w]}
    r0, r1, c0, c1 = live_r[0], live_r[-1] + 1, live_c[0], live_c[-1] + 1
    block = np.repeat(np.repeat(above[r0:r1, c0:c1], rows.size[r0:r1], 0), cols.size[c0:c1], 1)
    y0, x0 = int(rows.start[r0]), int(cols.start[c0])
    tr, tc, hits = evaluated
    inside = undecided[tr, tc]
    if inside.any():
        tr, tc, hits = tr[inside], tc[inside], hits[inside]
        y = np.broadcast_to(rows.pix[tr][:, :, None], hits.shape) - y0
        x = np.broadcast_to(cols.pix[tc][:, None, :], hits.shape) - x0
        block[y, x] = hits
    return _rle_from_block(block, y0, x0, h, w)


def _rle_from_block(block: np.ndarray, y0: int, x0: int, h: int, w: int) -> dict[str, Any]:
    """COCO RLE (column-major runs) of an ``(h, w)`` mask that is zero outside ``block``, whose
    top-left pixel is ``(y0, x0)``."""
    bh, bw = block.shape
    padded = np.zeros((bw, bh + 2), dtype=bool)  # each column framed by zeros, column-major
    padded[:, 1:-1] = block.T
    flat = padded.reshape(-1)
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    col, row = np.divmod(change, bh + 2)
    starts = (x0 + col) * h + (y0 + row - 1)
    # A run through the bottom of one column and the top of the next is one run: its end and
    # restart fall on the same pixel; drop both.
    same = np.flatnonzero(starts[1:] == starts[:-1])
    if len(same):
        starts = np.delete(starts, np.concatenate([same, same + 1]))
    starts = starts[starts < h * w]  # a run ending on the last pixel ends with the mask
    counts = np.diff(np.concatenate(([0], starts, [h * w])))
    return {"size": [h, w], "counts": counts.tolist()}
