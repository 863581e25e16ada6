"""Segment everything's fast mode (``fast=True``): which grid points are worth decoding, and
what a run did.

- Hierarchical sampling (after TinySAM): the sparse grid (every other row and column of a
  regular grid, every fourth point of a user grid) is decoded first. On a regular grid a later
  point is skipped only if *every* sparse point next to it (2 or 4 of them) has an accepted
  mask that covers it: the point sits inside one object together with its neighbours, whose
  masks it would repeat; a point on an object's edge, whose neighbours see different objects,
  is decoded. (A user grid has no neighbours: there any accepted mask that covers a point
  skips it, TinySAM's rule.) Coverage is read on the low-res grid (:class:`Coverage`).
  Measured on an object scene (``benchmarks/bench_everything.py --scene objects``) the
  neighbour rule kept recall 0.98 against exact mode where "any mask covers it" fell to 0.88
  (57 % and 26 % of the points decoded); three levels (every fourth row and column first)
  decoded 10 % fewer points at recall 0.84, and only each neighbour's finest mask (instead of
  the union of its masks) 13 % more at recall 1.0.
- After the crop's NMS, every skipped point that no surviving mask covers is decoded after all
  (a repair pass), so a skipped point is always inside a kept mask.
- Masks are judged and made by the exact path (the reference's stability scores, boxes and
  masks of the decoded points), so a kept mask is exactly the one exact mode would give for its
  point, and the only difference from exact mode is which points were decoded. (The low-res
  filter is a switch of its own: measured slower here, since it upsamples survivors as floats,
  and it moves NMS decisions; see :class:`Speed`.)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

__all__ = [
    "Coverage",
    "EverythingStats",
    "Speed",
    "confident_masks",
    "covered_by",
    "grid_side",
    "sparse_first",
]


@dataclass
class Speed:
    """Opt-in settings that trade exactness for speed (all off = the reference's output).

    low_res_filter: compute stability scores and the boxes used for filtering and NMS on the
        low-res (256 x 256) logits; only masks that survive every filter and the per-crop NMS are
        upsampled (their final boxes, areas and RLEs come from the full-resolution mask).
    bf16: run the decoder under bfloat16 autocast (CPUs with AVX512-BF16/AMX, CUDA).
    skip_covered: hierarchical sampling: the sparse grid first, then only the points that not
        every sparse neighbour's accepted masks cover (:mod:`samkit.amg.fast`).

    ``fast=True`` on the generator turns on ``skip_covered`` (any engine). ``low_res_filter``
    and ``bf16`` stay opt-in: with hierarchical sampling the exact path's filters were measured
    faster than the low-res filter (which upsamples its survivors as float maps) and lose no
    masks; bf16 was no faster on the CPU decoder and moves steep logits across the stability
    thresholds (``benchmarks/README.md``).
    """

    low_res_filter: bool = False
    bf16: bool = False
    skip_covered: bool = False


@dataclass
class EverythingStats:
    """What one ``generate`` call did: ``points`` grid points over all crops, ``decoded``
    prompts sent to the decoder, ``skipped`` points left out (covered by an accepted mask),
    ``candidates`` masks past the score filters, ``kept`` masks returned, ``mode`` "exact",
    "fast" or "boxes" (``prompts_from``: ``boxes`` the detector found on the image, each
    decoded once per crop it overlaps, so ``decoded`` counts box prompts)."""

    mode: str = "exact"
    points: int = 0
    decoded: int = 0
    skipped: int = 0
    candidates: int = 0
    kept: int = 0
    boxes: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def line(self) -> str:
        """One line for ``verbose=True``."""
        if self.mode == "boxes":
            return (
                f"segment everything (boxes): {self.boxes} detector boxes, {self.decoded} box "
                f"prompts decoded, {self.candidates} candidates, {self.kept} masks kept"
            )
        return (
            f"segment everything ({self.mode}): {self.decoded}/{self.points} points decoded, "
            f"{self.skipped} skipped, {self.candidates} candidates, {self.kept} masks kept"
        )


def grid_side(n_points: int) -> int:
    """The side of a square grid of ``n_points`` (row-major, x fastest), or 0 if it is not one."""
    side = math.isqrt(n_points)
    return side if side * side == n_points and side > 1 else 0


def sparse_first(n_points: int) -> tuple[np.ndarray, np.ndarray]:
    """A grid's point indices split into the sparse grid and the rest (int64): for a square
    grid (row-major, x fastest), the points of even row and column; otherwise every fourth."""
    idx = np.arange(n_points)
    side = grid_side(n_points)
    sparse = ((idx // side) % 2 == 0) & ((idx % side) % 2 == 0) if side else idx % 4 == 0
    return idx[sparse], idx[~sparse]


def covered_by(rles: list[dict[str, Any]], points: np.ndarray) -> np.ndarray:
    """``(n,)`` bool: whether each point ``(n, 2)`` ``(x, y)`` (pixels, floored) lies inside at
    least one of the uncompressed COCO ``rles``, read straight from their runs."""
    out = np.zeros(len(points), dtype=bool)
    for rle in rles:
        h, w = rle["size"]
        x = np.clip(points[:, 0].astype(np.int64), 0, w - 1)
        y = np.clip(points[:, 1].astype(np.int64), 0, h - 1)
        ends = np.cumsum(np.asarray(rle["counts"], dtype=np.int64))
        run = np.searchsorted(ends, x * h + y, side="right")
        out |= run % 2 == 1
    return out


def confident_masks(
    data: Any, threshold: float, stability_thresh: float
) -> tuple[np.ndarray, np.ndarray]:
    """Low-res masks ``(k, r, c)`` bool of the candidates whose stability passes the
    generator's threshold (the masks that let later grid points be skipped), and the grid point
    ``(k, 2)`` each came from."""
    low = data.low_res
    if low is None or len(data) == 0:
        return np.zeros((0, 1, 1), dtype=bool), np.zeros((0, 2))
    keep = np.flatnonzero(data.stability >= np.float32(stability_thresh))
    if not isinstance(low, np.ndarray):
        import torch

        rows = torch.from_numpy(keep).to(low.device)
        return (low[rows] > threshold).cpu().numpy(), data.points[keep]
    return low[keep] > np.float32(threshold), data.points[keep]


class Coverage:
    """Accepted masks of one crop's grid points on the low-res grid: per decoded point the union
    of its masks ``(rows, cols)`` bool, and the union of all. Low-res pixel ``(i, j)`` spans
    crop pixels ``[i, i + 1) * crop / (input * scale)``.

    ``points`` ``(n, 2)``: the crop's grid, row-major with x fastest when it is square (then
    :meth:`covered` asks every sparse neighbour; see the module docstring)."""

    def __init__(
        self,
        input_size: tuple[int, int],
        crop_size: tuple[int, int],
        image_size: int,
        low: int,
        points: np.ndarray,
    ) -> None:
        scale = low / image_size
        self.rows = min(low, math.ceil(input_size[0] * scale))
        self.cols = min(low, math.ceil(input_size[1] * scale))
        self.map = np.zeros((self.rows, self.cols), dtype=bool)
        # crop pixel -> low-res pixel
        self.sy = input_size[0] / crop_size[0] * scale
        self.sx = input_size[1] / crop_size[1] * scale
        self.side = grid_side(len(points))
        self.index = {(float(x), float(y)): i for i, (x, y) in enumerate(points)}
        self.pixels = self._pixels(points)
        self.per_point: dict[int, np.ndarray] = {}

    def _pixels(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        i = np.clip((points[:, 1] * self.sy).astype(np.int64), 0, self.rows - 1)
        j = np.clip((points[:, 0] * self.sx).astype(np.int64), 0, self.cols - 1)
        return i, j

    def covered(self, idx: np.ndarray) -> np.ndarray:
        """``(n,)`` bool for grid points ``idx`` (indices into ``points``, not on the sparse
        grid): on a square grid, whether every sparse neighbour has an added mask covering the
        point; otherwise whether any added mask covers it."""
        i, j = self.pixels[0][idx], self.pixels[1][idx]
        if not self.side:
            return self.map[i, j]
        out = np.zeros(len(idx), dtype=bool)
        for k, point in enumerate(idx):
            masks = [self.per_point.get(q) for q in self.neighbours(int(point))]
            out[k] = bool(masks) and all(m is not None and m[i[k], j[k]] for m in masks)
        return out

    def neighbours(self, point: int) -> list[int]:
        """Indices of the sparse points (even row and column) next to grid point ``point``."""
        side = self.side
        r, c = divmod(point, side)
        rows = [r] if r % 2 == 0 else [v for v in (r - 1, r + 1) if v < side]
        cols = [c] if c % 2 == 0 else [v for v in (c - 1, c + 1) if v < side]
        return [a * side + b for a in rows for b in cols if (a, b) != (r, c)]

    def add(self, masks: np.ndarray, points: np.ndarray) -> None:
        """Add low-res masks ``(n, r, c)`` bool (cut or padded to the map's size) of the grid
        points ``(n, 2)`` they came from."""
        if not len(masks):
            return
        r, c = min(self.rows, masks.shape[1]), min(self.cols, masks.shape[2])
        for mask, (x, y) in zip(masks, points, strict=True):
            own = self.per_point.setdefault(
                self.index[(float(x), float(y))], np.zeros_like(self.map)
            )
            own[:r, :c] |= mask[:r, :c]
            self.map[:r, :c] |= mask[:r, :c]
