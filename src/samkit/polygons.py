"""Masks <-> polygons with OpenCV contours, in one of two coordinate frames.

Pixel ``(r, c)`` of a mask covers the unit square ``[c, c + 1] x [r, r + 1]`` of the continuous
image plane; its centre is ``(c + 0.5, r + 0.5)``. Polygon vertices are ``(x, y)``.

``frame="centers"`` (default): vertices are boundary-pixel *indices*, as ``cv2.findContours``
traces them (the polygon runs through the centres of the mask's boundary pixels, written without
the 0.5). Rasterisers that fill every pixel a polygon's outline touches, with integer vertices
as pixel indices, draw the boundary pixels too and reproduce the mask: ``cv2.fillPoly`` (used by
Ultralytics' YOLO-seg loader, ``ultralytics.data.utils.polygon2mask``, and by
:func:`polygons_to_mask`) and ``PIL.ImageDraw.polygon`` (used by LabelMe's ``shape_to_mask``).
This is the frame of YOLO-seg labels, LabelMe shapes and Ultralytics' ``Masks.xy``.

``frame="edges"``: vertices are integer pixel *corners*; the polygon is the outer boundary of
the union of the mask's pixel squares (holes likewise), so its area equals the pixel count.
Rasterisers that take the pixels whose centre lies inside the polygon reproduce the mask
exactly: pycocotools (``frPyObjects`` + ``decode``, i.e. COCO polygons) and
:func:`polygons_to_mask` with ``frame="edges"``. Tracing: the mask is upsampled 2x with nearest
neighbour, so that every quarter-pixel on the boundary lies next to one corner of its pixel;
``cv2.findContours`` on that image visits the boundary quarter-pixels in order and each maps to
its pixel's corner in its quadrant (``x = ceil(X / 2)``), a point on the boundary; repeated and
collinear points are then dropped, leaving axis-parallel edges between corner vertices.
Where two pixels touch only diagonally (8-connected), the polygon passes twice through their
shared corner (a pinch of zero width): the area is still exact, and so is pycocotools' raster.
Outer polygons never carry holes: background enclosed by the part (including background closed
off by a diagonal contact) is filled in unless the holes are written too
(:func:`mask_to_polygons_with_holes`).

Hole polygons in the ``"centers"`` frame run through the *foreground* pixels around the hole;
:func:`polygons_to_mask` accounts for that when erasing holes. In the ``"edges"`` frame they
follow the hole's pixel edges exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import cv2
import numpy as np

from samkit.errors import ArgumentError
from samkit.polygon_merge import area_key as _area_key
from samkit.polygon_merge import merge_polygons

__all__ = [
    "PolygonFrame",
    "PolygonMode",
    "mask_to_polygons",
    "mask_to_polygons_with_holes",
    "merge_polygons",
    "polygons_to_mask",
]

PolygonMode = Literal["all", "largest", "merge"]
PolygonFrame = Literal["centers", "edges"]


def _check_mask(mask: np.ndarray) -> np.ndarray:
    arr = np.asarray(mask)
    if arr.ndim != 2:
        raise ArgumentError(f"mask must have shape (H, W), got an array of shape {arr.shape}")
    return np.ascontiguousarray(arr != 0, dtype=np.uint8)


def _check_frame(frame: str) -> PolygonFrame:
    if frame not in ("centers", "edges"):
        raise ArgumentError(f"frame must be 'centers' or 'edges', got {frame!r}")
    return frame  # type: ignore[return-value]


def _contours(
    mask: np.ndarray, frame: PolygonFrame = "centers"
) -> tuple[list[np.ndarray], np.ndarray]:
    """Two-level contour tree of a ``(H, W)`` mask: contours ``(K, 2)`` int and hierarchy ``(M, 4)``
    rows ``[next, prev, first_child, parent]`` (parent -1 = outer boundary)."""
    img = _check_mask(mask)
    if frame == "edges":
        return _edge_contours(img)
    contours, hierarchy = cv2.findContours(img, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    if hierarchy is None:
        return [], np.zeros((0, 4), dtype=np.int32)
    return [c.reshape(-1, 2) for c in contours], hierarchy.reshape(-1, 4)


def _edge_contours(img: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """:func:`_contours` in the ``"edges"`` frame for a ``(H, W)`` uint8 0/1 mask."""
    rows = np.flatnonzero(img.any(axis=1))
    if not len(rows):
        return [], np.zeros((0, 4), dtype=np.int32)
    cols = np.flatnonzero(img.any(axis=0))
    y0, y1, x0, x1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    crop = img[y0:y1, x0:x1]
    # Work on the bounding box only, upsampled 2x (each pixel -> a 2x2 block) with a 2-pixel
    # background border so that no contour touches the image edge.
    up = np.zeros((2 * (y1 - y0) + 4, 2 * (x1 - x0) + 4), dtype=np.uint8)
    up[2:-2, 2:-2] = np.repeat(np.repeat(crop, 2, axis=0), 2, axis=1)
    # With this even offset the contours come in 2x full-image coordinates (all >= 0), and a
    # boundary quarter-pixel X maps to its pixel's corner ceil(X / 2) = (X + 1) // 2.
    offset = (2 * x0 - 2, 2 * y0 - 2)
    contours, hierarchy = cv2.findContours(
        up, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE, offset=offset
    )
    if hierarchy is None:  # pragma: no cover - a non-empty mask always has a contour
        return [], np.zeros((0, 4), dtype=np.int32)
    return _drop_redundant([c.reshape(-1, 2) for c in contours]), hierarchy.reshape(-1, 4)


def _drop_redundant(contours: list[np.ndarray]) -> list[np.ndarray]:
    """Map 2x contours ``(K, 2)`` to pixel corners, then drop repeated vertices and vertices in
    the middle of a straight run (same direction in and out) of every closed ring, vectorised
    over all rings at once. Reversals (zero-width spikes) are kept."""
    lengths = np.array([len(c) for c in contours])
    pts = (np.concatenate(contours).astype(np.int64) + 1) // 2
    ring = np.repeat(np.arange(len(contours)), lengths)
    keep = np.any(pts != pts[_cyclic(lengths, -1)], axis=1)
    starts = np.cumsum(lengths) - lengths
    keep[starts[~np.add.reduceat(keep, starts).astype(bool)]] = True  # a ring of one point
    pts, ring = pts[keep], ring[keep]
    lengths = np.bincount(ring, minlength=len(contours))
    d_in = pts - pts[_cyclic(lengths, -1)]
    d_out = pts[_cyclic(lengths, 1)] - pts
    cross = d_in[:, 0] * d_out[:, 1] - d_in[:, 1] * d_out[:, 0]
    straight = (cross == 0) & ((d_in * d_out).sum(axis=1) > 0)
    pts, ring = pts[~straight], ring[~straight]
    lengths = np.bincount(ring, minlength=len(contours))
    return np.split(pts.astype(np.int32), np.cumsum(lengths)[:-1])


def _cyclic(lengths: np.ndarray, step: int) -> np.ndarray:
    """Index of each point's neighbour ``step`` (+1 next, -1 previous) within its own ring, for
    rings of ``lengths`` points stored one after another."""
    starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
    sizes = np.repeat(lengths, lengths)
    return starts + (np.arange(int(lengths.sum())) - starts + step) % sizes


def _simplify(poly: np.ndarray, tolerance: float) -> np.ndarray:
    """Douglas-Peucker with ``tolerance`` pixels; a ring that would fall under 3 points keeps
    its full outline, so simplification never deletes a part."""
    if tolerance > 0 and len(poly) > 3:
        simple = cv2.approxPolyDP(poly.reshape(-1, 1, 2), tolerance, closed=True).reshape(-1, 2)
        if len(simple) >= 3:
            poly = simple
    return poly.astype(np.float64)


def _check_tolerance(tolerance: float) -> float:
    tol = float(tolerance)
    if not tol >= 0:
        raise ArgumentError(f"tolerance must be >= 0 (pixels), got {tolerance!r}")
    return tol


def mask_to_polygons_with_holes(
    mask: np.ndarray, *, tolerance: float = 0.0, frame: PolygonFrame = "centers"
) -> list[tuple[np.ndarray, list[np.ndarray]]]:
    """Every connected part of a mask ``(H, W)`` as ``(outer, holes)``.

    ``outer`` is ``(K, 2)`` float64 ``(x, y)`` in ``frame`` (``"centers"``: boundary pixel
    indices; ``"edges"``: pixel corners, see the module docstring), ``holes`` a list of such
    arrays. ``tolerance`` > 0 simplifies each ring with Douglas-Peucker (``cv2.approxPolyDP``,
    pixels). Rings with fewer than 3 points are dropped (a part whose outer ring is dropped goes
    with its holes; in the ``"edges"`` frame every ring has at least 4). An object inside a hole
    is a separate part.
    """
    tol = _check_tolerance(tolerance)
    contours, hierarchy = _contours(mask, _check_frame(frame))
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
    mask: np.ndarray,
    *,
    mode: PolygonMode = "all",
    tolerance: float = 0.0,
    frame: PolygonFrame = "centers",
) -> list[np.ndarray]:
    """Outer boundaries of a mask ``(H, W)`` as polygons ``(K, 2)`` float64 ``(x, y)``.

    Holes are not represented (a ring becomes its outer disc); use
    :func:`mask_to_polygons_with_holes` where holes matter.

    Args:
        mask: ``(H, W)`` bool (or numeric, nonzero = foreground).
        mode: ``"all"`` one polygon per connected part; ``"largest"`` only the part with the
            largest polygon area; ``"merge"`` every part joined into a single polygon with
            zero-width bridges (see :func:`merge_polygons`), for formats that hold one polygon
            per object. An empty mask gives ``[]`` in every mode.
        tolerance: Douglas-Peucker tolerance in pixels; 0 keeps every contour vertex.
        frame: ``"centers"`` (default) vertices on boundary pixel indices, for rasterisers that
            fill what the outline touches (YOLO-seg / Ultralytics, LabelMe / PIL, OpenCV);
            ``"edges"`` vertices on pixel corners tracing the pixel edges, for rasterisers that
            sample pixel centres (COCO / pycocotools). See the module docstring.

    Returns:
        A list of polygons with at least 3 points each (``"centers"``: a part of one or two
        pixels in a line has no such polygon and is dropped; ``"edges"``: every part has one).
    """
    if mode not in ("all", "largest", "merge"):
        raise ArgumentError(f"mode must be 'all', 'largest' or 'merge', got {mode!r}")
    tol = _check_tolerance(tolerance)
    contours, hierarchy = _contours(mask, _check_frame(frame))
    polys = [_simplify(c, tol) for c, h in zip(contours, hierarchy, strict=True) if h[3] == -1]
    polys = [p for p in polys if len(p) >= 3]
    if not polys or mode == "all":
        return polys
    if mode == "largest":
        return [max(polys, key=_area_key)]
    return [merge_polygons(polys)]


def polygons_to_mask(
    polygons: Sequence[np.ndarray | tuple[np.ndarray, Sequence[np.ndarray]]],
    height: int,
    width: int,
    *,
    frame: PolygonFrame = "centers",
) -> np.ndarray:
    """Rasterise polygons in this module's conventions into a ``(height, width)`` bool mask.

    Each item is either an outer polygon ``(K, 2)`` or an ``(outer, holes)`` pair as returned by
    :func:`mask_to_polygons_with_holes`, with ``(x, y)`` vertices in ``frame``:

    - ``"centers"``: vertices rounded to pixel indices; outer polygons are filled boundary
      included (``cv2.fillPoly``); hole interiors are cleared but their boundary pixels, which
      belong to the foreground, are kept.
    - ``"edges"``: a pixel is set when its centre lies inside the outer polygon and outside its
      holes (even-odd rule, so zero-width bridges add nothing; a centre exactly on a sloped
      outline is taken as lying just left of it). Edge polygons from :func:`mask_to_polygons` give back the
      mask exactly, as pycocotools does.
    """
    if int(height) <= 0 or int(width) <= 0:
        raise ArgumentError(f"height and width must be positive, got {height}x{width}")
    _check_frame(frame)
    canvas = np.zeros((int(height), int(width)), dtype=np.uint8)
    for item in polygons:
        outer, holes = item if isinstance(item, tuple) else (item, [])
        if frame == "edges":
            _fill_edges(canvas, np.asarray(outer, dtype=np.float64).reshape(-1, 2), holes)
            continue
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


def _fill_edges(canvas: np.ndarray, outer: np.ndarray, holes: Sequence[np.ndarray]) -> None:
    """OR one ``"edges"``-frame part into ``canvas`` ``(H, W)`` uint8: the pixels whose centre
    has an odd number of ring crossings to its left (even-odd rule over the outer ring and its
    holes), scanned row by row on the part's bounding box.

    A crossing at ``x`` on row ``r`` (edges span rows half-open, ``y_lo <= r + 0.5 < y_hi``)
    toggles the pixels with ``c + 0.5 > x``; a cumulative sum of the toggles gives the parity. So
    zero-width bridges and pinches (crossed twice at the same ``x``) add nothing, as in
    pycocotools.
    """
    if not len(outer):
        return
    h, w = canvas.shape
    lo, hi = np.floor(outer.min(axis=0)), np.ceil(outer.max(axis=0))
    x0, y0 = max(int(lo[0]), 0), max(int(lo[1]), 0)
    x1, y1 = min(int(hi[0]), w), min(int(hi[1]), h)
    if x1 <= x0 or y1 <= y0:
        return
    origin = np.array([x0, y0], dtype=np.float64)
    rings = [outer - origin] + [np.asarray(p, np.float64).reshape(-1, 2) - origin for p in holes]
    start = np.concatenate(rings)
    end = np.concatenate([np.roll(r, -1, axis=0) for r in rings])
    sloped = start[:, 1] != end[:, 1]
    start, end = start[sloped], end[sloped]
    bh, bw = y1 - y0, x1 - x0
    y_lo, y_hi = np.minimum(start[:, 1], end[:, 1]), np.maximum(start[:, 1], end[:, 1])
    r0 = np.clip(np.ceil(y_lo - 0.5), 0, bh).astype(np.int64)
    r1 = np.clip(np.ceil(y_hi - 0.5), 0, bh).astype(np.int64)
    counts = np.maximum(r1 - r0, 0)
    first = np.repeat(np.cumsum(counts) - counts, counts)
    rows = np.repeat(r0, counts) + np.arange(int(counts.sum())) - first
    p, q = np.repeat(start, counts, axis=0), np.repeat(end, counts, axis=0)
    x = p[:, 0] + (rows + 0.5 - p[:, 1]) * (q[:, 0] - p[:, 0]) / (q[:, 1] - p[:, 1])
    cols = np.clip(np.floor(x - 0.5) + 1, 0, bw).astype(np.int64)
    toggles = np.bincount(rows * (bw + 1) + cols, minlength=bh * (bw + 1))
    inside = (np.cumsum(toggles.reshape(bh, bw + 1), axis=1)[:, :bw] & 1).astype(np.uint8)
    canvas[y0:y1, x0:x1] |= inside


def _int_points(poly: np.ndarray) -> np.ndarray:
    return np.rint(np.asarray(poly, dtype=np.float64)).astype(np.int32).reshape(-1, 1, 2)
