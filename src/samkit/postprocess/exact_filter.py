"""**exact** filtering of segment everything's candidates, with the pixel work deferred to the
masks that are kept.

:mod:`samkit.postprocess.exact` decides most full-resolution pixels from the low-res logits
(tiles whose support lies clearly above or below a threshold) and evaluates the rest, the tiles
along each threshold's contour, bit for bit as the reference's two resizes. Large masks have
long contours, so evaluating all of them for every candidate costs more than the decoder; but
most candidates need far less than their exact counts:

- the stability filter only needs the side of ``stability_score_thresh`` the score falls on.
  The decided tiles bound both counts (``inter`` between its decided-above pixels and those plus
  its undecided ones, ``union`` likewise), so the score lies between ``inter_lo / union_hi`` and
  ``inter_hi / union_lo`` (a float32 quotient rounds monotonically, so the bounds hold after
  rounding). Only candidates whose bounds straddle the threshold are evaluated; with the filter
  off (``stability_score_thresh=0``), none are.
- NMS needs each candidate's exact box: the decided-above tiles give an inner box, and only the
  undecided tiles outside it can move it, so only those are evaluated.
- The kept masks' exact stability scores and RLEs come after NMS, for its survivors only
  (:func:`finish_candidates`), in one evaluation of their contour tiles.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from samkit.postprocess.exact import (
    Geometry,
    _any,
    _Axis,
    _classify,
    _margin,
    _tile_boxes,
    _values,
    mask_rle,
)
from samkit.postprocess.reduce import stability_from_counts

__all__ = ["MaskStats", "exact_stats", "filter_candidates", "finish_candidates"]

# Undecided tiles evaluated at once (each ~5 x 5 pixels and a ~6 x 6 first-resize patch).
_CHUNK_TILES = 4096


def _levels(threshold: float, offset: float) -> tuple[float, float, float]:
    """The stability score's two thresholds, then the mask's."""
    return threshold + offset, threshold - offset, threshold


def _pixels(tiles: np.ndarray, rows: _Axis, cols: _Axis) -> np.ndarray:
    """``(N,)`` int64 full-resolution pixels in the tiles ``(N, tr, tc)`` bool of each mask."""
    per_row = tiles.astype(np.float32) @ cols.size.astype(np.float32)  # exact: < 2**24
    return np.rint(per_row.astype(np.float64) @ rows.size.astype(np.float64)).astype(np.int64)


def _count_open(
    low: np.ndarray,
    rows: _Axis,
    cols: _Axis,
    open_: list[np.ndarray],
    levels: tuple[float, ...],
    counts: list[np.ndarray],
) -> None:
    """Add to ``counts[k]`` ``(N,)`` the pixels ``> levels[k]`` of each mask's tiles undecided
    for that level (``open_[k]`` ``(N, tr, tc)``), evaluated exactly."""
    m_all, tr_all, tc_all = np.nonzero(_any(open_))
    n = len(low)
    margin = _margin(low, levels)
    for start in range(0, len(m_all), _CHUNK_TILES):
        sl = slice(start, start + _CHUNK_TILES)
        m, tr, tc = m_all[sl], tr_all[sl], tc_all[sl]
        values = _values(low, rows, cols, (m, tr, tc), levels, margin)
        valid = rows.valid[tr][:, :, None] & cols.valid[tc][:, None, :]
        for level, t in enumerate(levels):
            hit = (values > np.float32(t)) & valid & open_[level][m, tr, tc][:, None, None]
            counts[level] += np.bincount(m, weights=hit.sum((1, 2)), minlength=n).astype(np.int64)


def _stability(
    low: np.ndarray,
    rows: _Axis,
    cols: _Axis,
    classified: tuple[list[np.ndarray], list[np.ndarray]],
    levels: tuple[float, ...],
    stability_thresh: float,
) -> np.ndarray:
    """``(N,)`` float32 stability scores, exact where the bounds do not settle the filter's
    decision, else the lower bound (on the same side of ``stability_thresh`` as the exact
    score, and not NaN where the exact score is not)."""
    above, open_ = classified
    sure = [_pixels(a, rows, cols) for a in above[:2]]
    maybe = [_pixels(o, rows, cols) for o in open_[:2]]
    lower = stability_from_counts(sure[0], sure[1] + maybe[1])
    upper = stability_from_counts(sure[0] + maybe[0], sure[1])
    t = np.float32(stability_thresh)
    settled = ((lower >= t) | (upper < t)) & (sure[1] > 0)  # union_lo > 0: exact is not NaN
    settled |= (maybe[0] == 0) & (maybe[1] == 0)  # nothing undecided: the bound is exact
    todo = np.flatnonzero(~settled)
    if len(todo):
        counts = [sure[0][todo], sure[1][todo]]
        sub_open = [o[todo] for o in open_[:2]]
        _count_open(np.ascontiguousarray(low[todo]), rows, cols, sub_open, levels[:2], counts)
        lower[todo] = stability_from_counts(counts[0], counts[1])
    return lower


def _exact_boxes(
    low: np.ndarray, rows: _Axis, cols: _Axis, above: np.ndarray, open_: np.ndarray, t: float
) -> np.ndarray:
    """``(N, 4)`` int64 exact boxes XYXY (zeros for an empty mask) of ``low > t``, evaluating
    only the undecided tiles outside each mask's box of decided-above tiles."""
    boxes = _tile_boxes(above, rows, cols)
    big = np.iinfo(np.int64).max
    any_r: np.ndarray = np.any(above, axis=2)
    any_c: np.ndarray = np.any(above, axis=1)
    has = any_r.any(1)
    first_r = np.where(has, np.argmax(any_r, 1), big)
    last_r = np.where(has, any_r.shape[1] - 1 - np.argmax(any_r[:, ::-1], 1), -1)
    first_c = np.where(has, np.argmax(any_c, 1), big)
    last_c = np.where(has, any_c.shape[1] - 1 - np.argmax(any_c[:, ::-1], 1), -1)
    m, tr, tc = np.nonzero(open_)
    out = (tr < first_r[m]) | (tr > last_r[m]) | (tc < first_c[m]) | (tc > last_c[m])
    m, tr, tc = m[out], tr[out], tc[out]
    margin = _margin(low, (t,))
    for start in range(0, len(m), _CHUNK_TILES):
        sl = slice(start, start + _CHUNK_TILES)
        values = _values(low, rows, cols, (m[sl], tr[sl], tc[sl]), (t,), margin)
        valid = rows.valid[tr[sl]][:, :, None] & cols.valid[tc[sl]][:, None, :]
        hit = (values > np.float32(t)) & valid
        any_row, any_col = hit.any(2), hit.any(1)
        hit_tile = any_row.any(1)
        mm = m[sl][hit_tile]
        y, x = rows.pix[tr[sl]][hit_tile], cols.pix[tc[sl]][hit_tile]
        any_row, any_col = any_row[hit_tile], any_col[hit_tile]
        np.minimum.at(boxes[:, 0], mm, np.where(any_col, x, big).min(1))
        np.minimum.at(boxes[:, 1], mm, np.where(any_row, y, big).min(1))
        np.maximum.at(boxes[:, 2], mm, np.where(any_col, x, -1).max(1))
        np.maximum.at(boxes[:, 3], mm, np.where(any_row, y, -1).max(1))
    boxes[boxes[:, 2] < 0] = 0  # no pixel above: an empty mask's box
    return boxes


def filter_candidates(
    low: np.ndarray, geometry: Geometry, threshold: float, offset: float, stability_thresh: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Low-res logits ``(N, s, s)`` (or cut to ``geometry.used_low_res()``) -> ``(keep,
    stability, boxes)``: int64 indices ``(K,)`` of the masks whose stability score (``logits >
    threshold + offset`` over ``> threshold - offset`` in the ``original_size`` frame) is ``>=
    stability_thresh`` (all when it is 0), exactly the reference's decision; their **exact**
    boxes XYXY ``(K, 4)`` int64 of ``logits > threshold``; and their stability scores ``(K,)``
    float32, exact where the decision needed it, otherwise a lower bound that passes the filter
    (:func:`finish_candidates` gives the exact scores of the masks kept after NMS)."""
    low = np.ascontiguousarray(low, dtype=np.float32)
    if len(low) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.float32), np.zeros((0, 4), np.int64)
    rows, cols = geometry.axes()
    levels = _levels(threshold, offset)
    above, open_ = _classify(low, rows, cols, levels)
    stability = _stability(low, rows, cols, (above, open_), levels, stability_thresh)
    keep = np.arange(len(low), dtype=np.int64)
    if stability_thresh > 0.0:
        keep = np.flatnonzero(stability >= np.float32(stability_thresh))
    if len(keep) == 0:
        return keep, stability[keep], np.zeros((0, 4), np.int64)
    if len(keep) < len(low):
        low, above[2], open_[2] = low[keep], above[2][keep], open_[2][keep]
    boxes = _exact_boxes(low, rows, cols, above[2], open_[2], levels[2])
    return keep, stability[keep], boxes


def finish_candidates(
    low: np.ndarray, geometry: Geometry, threshold: float, offset: float
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Low-res logits ``(N, s, s)`` of the kept masks -> their **exact** stability scores
    ``(N,)`` float32 and uncompressed COCO RLEs of ``logits > threshold`` (``original_size``
    frame), from one evaluation of each mask's undecided tiles."""
    low = np.ascontiguousarray(low, dtype=np.float32)
    if len(low) == 0:
        return np.zeros(0, np.float32), []
    rows, cols = geometry.axes()
    levels = _levels(threshold, offset)
    above, open_ = _classify(low, rows, cols, levels)
    counts = [_pixels(a, rows, cols) for a in above[:2]]
    margin = _margin(low, levels)
    rles = []
    for i in range(len(low)):
        tr, tc = np.nonzero(open_[0][i] | open_[1][i] | open_[2][i])
        if len(tr) == 0:
            empty = np.zeros((0, 1, 1), dtype=bool)
            rles.append(mask_rle(above[2][i], open_[2][i], (tr, tc, empty), rows, cols, geometry))
            continue
        values = _values(low, rows, cols, (np.full(len(tr), i), tr, tc), levels, margin)
        valid = rows.valid[tr][:, :, None] & cols.valid[tc][:, None, :]
        for level in (0, 1):
            hit = (values > np.float32(levels[level])) & valid
            counts[level][i] += int(hit[open_[level][i][tr, tc]].sum())
        hits = values > np.float32(threshold)
        rles.append(mask_rle(above[2][i], open_[2][i], (tr, tc, hits), rows, cols, geometry))
    return stability_from_counts(counts[0], counts[1]), rles


@dataclass
class MaskStats:
    """Per mask ``(N,)``: stability score (float32), pixel count above the mask threshold
    (int64) and box XYXY inclusive (int64 ``(N, 4)``, zeros for an empty mask)."""

    stability: np.ndarray
    area: np.ndarray
    boxes: np.ndarray


def exact_stats(low: np.ndarray, geometry: Geometry, threshold: float, offset: float) -> MaskStats:
    """Low-res logits ``(N, s, s)`` -> **exact** stability scores (``logits > threshold +
    offset`` over ``> threshold - offset``), areas and boxes of ``logits > threshold`` in the
    ``original_size`` frame, for every mask (no deferral)."""
    low = np.ascontiguousarray(low, dtype=np.float32)
    if len(low) == 0:
        empty = np.zeros(0, dtype=np.int64)
        return MaskStats(np.zeros(0, np.float32), empty, np.zeros((0, 4), np.int64))
    rows, cols = geometry.axes()
    levels = _levels(threshold, offset)
    above, open_ = _classify(low, rows, cols, levels)
    counts = [_pixels(a, rows, cols) for a in above]
    _count_open(low, rows, cols, open_, levels, counts)
    boxes = _exact_boxes(low, rows, cols, above[2], open_[2], levels[2])
    return MaskStats(stability_from_counts(counts[0], counts[1]), counts[2], boxes)
