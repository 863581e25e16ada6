"""merge_polygons: one polygon per object along a minimum spanning tree of bridges, at any part
count (it was an all-pairs splice, quadratic in the parts: minutes per fragmented mask)."""

from __future__ import annotations

import numpy as np
import pytest

from samkit.polygons import mask_to_polygons, merge_polygons, polygons_to_mask


def _perimeter(poly: np.ndarray) -> float:
    return float(np.linalg.norm(np.roll(poly, -1, axis=0) - poly, axis=1).sum())


def _bridge_length(parts: list[np.ndarray], merged: np.ndarray) -> float:
    """Each bridge is walked there and back: merged outline = part outlines + 2 x bridges."""
    return (_perimeter(merged) - sum(_perimeter(p) for p in parts)) / 2


def _mst_weight(parts: list[np.ndarray]) -> float:
    """Prim over parts with the closest vertex pair as edge weight (brute force)."""
    k = len(parts)
    dist = np.array(
        [[np.linalg.norm(a[:, None] - b[None], axis=2).min() for b in parts] for a in parts]
    )
    inside, best, total = np.zeros(k, bool), dist[0].copy(), 0.0
    inside[0] = True
    for _ in range(k - 1):
        j = int(np.argmin(np.where(inside, np.inf, best)))
        total += best[j]
        inside[j] = True
        best = np.minimum(best, dist[j])
    return total


def _square(x: float, y: float, s: float) -> np.ndarray:
    return np.array([[x, y], [x + s, y], [x + s, y + s], [x, y + s]], dtype=np.float64)


def test_bridges_are_a_minimum_spanning_tree() -> None:
    # Largest first, then the medium part far right, then the small one between them: splicing
    # each part to the path built so far bridged big -> medium directly (90, then 40 for the
    # small part); the spanning tree goes through the small part (40 + 48).
    parts = [_square(0, 0, 10), _square(100, 0, 6), _square(50, 0, 2)]
    merged = merge_polygons(parts)
    assert len(merged) == sum(map(len, parts)) + 2 * (len(parts) - 1)
    assert _bridge_length(parts, merged) == pytest.approx(_mst_weight(parts))
    assert _bridge_length(parts, merged) == pytest.approx(88.0)
    rng = np.random.default_rng(0)
    for _ in range(20):
        parts = [_square(*rng.integers(0, 200, 2), int(rng.integers(1, 9))) for _ in range(12)]
        merged = merge_polygons(parts)
        assert _bridge_length(parts, merged) == pytest.approx(_mst_weight(parts), abs=1e-6)


def test_two_thousand_parts_give_one_covering_polygon() -> None:
    rng = np.random.default_rng(1)
    mask = np.zeros((600, 600), bool)
    cells = rng.choice(200 * 200, size=2000, replace=False)
    ys, xs = np.divmod(cells, 200)
    for dy in range(2):
        for dx in range(2):
            mask[3 * ys + dy, 3 * xs + dx] = True  # 2x2 blocks one pixel apart: 2000 parts
    assert len(mask_to_polygons(mask)) == 2000
    (merged,) = mask_to_polygons(mask, mode="merge")
    back = polygons_to_mask([merged], 600, 600)
    assert (back & mask).sum() == mask.sum()  # every part covered
    (edges,) = mask_to_polygons(mask, mode="merge", frame="edges")
    np.testing.assert_array_equal(polygons_to_mask([edges], 600, 600, frame="edges"), mask)


def test_degenerate_layouts() -> None:
    line = [np.array([[x, 0], [x + 1, 0], [x + 2, 0]], np.float64) for x in (10, 0, 20)]
    merged = merge_polygons(line)  # every vertex on one line: no triangulation to speak of
    assert len(merged) == 9 + 4
    assert _bridge_length(line, merged) == pytest.approx(_mst_weight(line))
    touching = [_square(0, 0, 4), np.array([[4, 4], [8, 4], [8, 8]], np.float64)]
    merged = merge_polygons(touching)  # a shared vertex: a bridge of length 0
    assert _bridge_length(touching, merged) == pytest.approx(0.0)
    np.testing.assert_array_equal(merge_polygons([_square(1, 2, 3)]), _square(1, 2, 3))
