"""Masks <-> polygons with OpenCV contours.

Coordinate convention: polygon vertices are ``(x, y)`` = ``(column, row)`` pixel *indices*, as
``cv2.findContours`` traces them: a vertex sits on the centre of a boundary pixel (pixel ``(r, c)``
covers ``[c, c + 1) x [r, r + 1)`` in continuous coordinates, its centre is ``(c + 0.5, r + 0.5)``;
samkit does not add that 0.5). ``cv2.fillPoly`` with the same integer vertices draws the boundary
pixels too, so outer polygons rasterise back onto the original mask. This is also the convention
of YOLO-seg labels and Ultralytics' ``Masks.xy``.

Hole polygons (from :func:`mask_to_polygons_with_holes`) likewise run through the *foreground*
pixels around the hole; :func:`polygons_to_mask` accounts for that when erasing holes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import cv2
import numpy as np

__all__ = ["mask_to_polygons", "mask_to_polygons_with_holes", "merge_polygons", "polygons_to_mask"]

PolygonMode = Literal["all", "largest", "merge"]


def _contours(mask: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """Two-level contour tree of a ``(H, W)`` mask: contours ``(K, 2)`` int32 and hierarchy ``(M, 4)``
    rows ``[next, prev, first_child, parent]`` (parent -1 = outer boundary)."""
    arr = np.asarray(mask)
    if arr.ndim != 2:
        raise ValueError(f"mask must have shape (H, W), got an array of shape {arr.shape}")
    img = np.ascontiguousarray(arr != 0, dtype=np.uint8)
    contours, hierarchy = cv2.findContours(img, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    if hierarchy is None:
        return [], np.zeros((0, 4), dtype=np.int32)
    return [c.reshape(-1, 2) for c in contours], hierarchy.reshape(-1, 4)


def _simplify(poly: np.ndarray, tolerance: float) -> np.ndarray:
    if tolerance > 0 and len(poly) > 3:
        poly = cv2.approxPolyDP(poly.reshape(-1, 1, 2), tolerance, closed=True).reshape(-1, 2)
    return poly.astype(np.float64)


def _check_tolerance(tolerance: float) -> float:
    tol = float(tolerance)
    if not tol >= 0:
        raise ValueError(f"tolerance must be >= 0 (pixels), got {tolerance!r}")
    return tol


def mask_to_polygons_with_holes(
    mask: np.ndarray, *, tolerance: float = 0.0
) -> list[tuple[np.ndarray, list[np.ndarray]]]:
    """Every connected part of a mask ``(H, W)`` as ``(outer, holes)``.

    ``outer`` is ``(K, 2)`` float64 ``(x, y)`` pixel indices, ``holes`` a list of such arrays.
    ``tolerance`` > 0 simplifies each ring with Douglas-Peucker (``cv2.approxPolyDP``, pixels).
    Rings with fewer than 3 points are dropped (a part whose outer ring is dropped goes with its
    holes). An object inside a hole is a separate part.
    """
    tol = _check_tolerance(tolerance)
    contours, hierarchy = _contours(mask)
    out: list[tuple[np.ndarray, list[np.ndarray]]] = []
    for i, contour in enumerate(contours):
        if hierarchy[i, 3] != -1:
            continue
        outer = _simplify(contour, tol)
        if len(outer) < 3:
            continue
        holes: list[np.ndarray] = []
        child = int(hierarchy[i, 2])
        while child != -1:
            hole = _simplify(contours[child], tol)
            if len(hole) >= 3:
                holes.append(hole)
            child = int(hierarchy[child, 0])
        out.append((outer, holes))
    return out


def mask_to_polygons(
    mask: np.ndarray, *, mode: PolygonMode = "all", tolerance: float = 0.0
) -> list[np.ndarray]:
    """Outer boundaries of a mask ``(H, W)`` as polygons ``(K, 2)`` float64 ``(x, y)`` pixel indices.

    Holes are not represented (a ring becomes its outer disc); use
    :func:`mask_to_polygons_with_holes` where holes matter.

    Args:
        mask: ``(H, W)`` bool (or numeric, nonzero = foreground).
        mode: ``"all"`` one polygon per connected part; ``"largest"`` only the part with the
            largest polygon area; ``"merge"`` every part joined into a single polygon with
            zero-width bridges (see :func:`merge_polygons`), for formats that hold one polygon
            per object. An empty mask gives ``[]`` in every mode.
        tolerance: Douglas-Peucker tolerance in pixels; 0 keeps every contour vertex.

    Returns:
        A list of polygons with at least 3 points each.
    """
    if mode not in ("all", "largest", "merge"):
        raise ValueError(f"mode must be 'all', 'largest' or 'merge', got {mode!r}")
    tol = _check_tolerance(tolerance)
    contours, hierarchy = _contours(mask)
    polys = [_simplify(c, tol) for c, h in zip(contours, hierarchy, strict=True) if h[3] == -1]
    polys = [p for p in polys if len(p) >= 3]
    if not polys or mode == "all":
        return polys
    if mode == "largest":
        return [max(polys, key=_area_key)]
    return [merge_polygons(polys)]


def _area_key(poly: np.ndarray) -> tuple[float, int]:
    return abs(float(cv2.contourArea(poly.astype(np.float32)))), len(poly)


def _nearest_pair(path: np.ndarray, poly: np.ndarray, chunk: int = 2048) -> tuple[int, int]:
    """Indices ``(i, j)`` minimising ``|path[i] - poly[j]|``, in chunks to bound memory."""
    best = (np.inf, 0, 0)
    for start in range(0, len(path), chunk):
        block = path[start : start + chunk]
        d2 = ((block[:, None, :] - poly[None, :, :]) ** 2).sum(-1)
        k = int(np.argmin(d2))
        i, j = divmod(k, d2.shape[1])
        if d2[i, j] < best[0]:
            best = (float(d2[i, j]), start + i, j)
    return best[1], best[2]


def merge_polygons(polygons: Sequence[np.ndarray]) -> np.ndarray:
    """Join several polygons ``(K_i, 2)`` into one ``(K, 2)`` polygon with zero-width bridges.

    Parts are added largest first; each is spliced into the path built so far at the closest pair
    of vertices ``a`` (on the path) and ``b`` (on the part): the walk goes ``a -> b``, round the
    part back to ``b``, then back to ``a``. The bridges enclose no area, so filling the result
    covers every part (plus the 1-pixel-wide bridge lines when rasterised with boundaries).
    """
    polys = [np.asarray(p, dtype=np.float64).reshape(-1, 2) for p in polygons]
    polys = [p for p in polys if len(p)]
    if not polys:
        raise ValueError("polygons must contain at least one non-empty polygon")
    polys.sort(key=_area_key, reverse=True)
    path = polys[0]
    for part in polys[1:]:
        i, j = _nearest_pair(path, part)
        loop = np.roll(part, -j, axis=0)
        path = np.concatenate([path[: i + 1], loop, loop[:1], path[i:]])
    return path


def polygons_to_mask(
    polygons: Sequence[np.ndarray | tuple[np.ndarray, Sequence[np.ndarray]]],
    height: int,
    width: int,
) -> np.ndarray:
    """Rasterise polygons in this module's convention into a ``(height, width)`` bool mask.

    Each item is either an outer polygon ``(K, 2)`` or an ``(outer, holes)`` pair as returned by
    :func:`mask_to_polygons_with_holes`. Outer polygons are filled (boundary included); hole
    interiors are cleared but their boundary pixels, which belong to the foreground, are kept.
    """
    if int(height) <= 0 or int(width) <= 0:
        raise ValueError(f"height and width must be positive, got {height}x{width}")
    canvas = np.zeros((int(height), int(width)), dtype=np.uint8)
    for item in polygons:
        outer, holes = item if isinstance(item, tuple) else (item, [])
        if not len(holes):
            cv2.fillPoly(canvas, [_int_points(outer)], 1)
            continue
        # Holes are cleared on a canvas of their own so they never erase other parts (an
        # object lying inside this part's hole is a separate item).
        part = np.zeros_like(canvas)
        cv2.fillPoly(part, [_int_points(outer)], 1)
        hole_pts = [_int_points(h) for h in holes]
        cv2.fillPoly(part, hole_pts, 0)
        cv2.polylines(part, hole_pts, isClosed=True, color=1)
        canvas |= part
    return canvas.astype(bool)


def _int_points(poly: np.ndarray) -> np.ndarray:
    return np.rint(np.asarray(poly, dtype=np.float64)).astype(np.int32).reshape(-1, 1, 2)
