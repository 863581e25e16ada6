"""Edge-frame polygons (vertices on pixel corners): exact through pycocotools and samkit's own
rasteriser; the centre frame stays exact for the centre-sampling-inclusive rasterisers (OpenCV,
Ultralytics' polygon2mask, PIL / LabelMe)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from samkit.formats.coco import CocoWriter
from samkit.polygons import mask_to_polygons, mask_to_polygons_with_holes, polygons_to_mask

mask_utils = pytest.importorskip("pycocotools.mask")

# pycocotools' own decode trips a NumPy 2 deprecation warning; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

KINDS = ["blobs", "thin_lines", "pixels", "diagonal", "rings", "noise", "border"]


def _mask(kind: str, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    h, w = (int(v) for v in rng.integers(8, 48, 2))
    m = np.zeros((h, w), np.uint8)
    if kind == "blobs":
        noise = cv2.GaussianBlur(rng.random((h, w)).astype(np.float32), (0, 0), 2.5)
        m = (noise > np.quantile(noise, rng.uniform(0.3, 0.9))).astype(np.uint8)
    elif kind == "thin_lines":
        for _ in range(3):
            p, q = rng.integers(0, [w, h], size=(2, 2)).tolist()
            cv2.line(m, tuple(p), tuple(q), 1, 1)
    elif kind == "pixels":
        m[rng.integers(0, h, 6), rng.integers(0, w, 6)] = 1
    elif kind == "diagonal":  # pixels touching only at corners, plus a diagonal staircase
        y, x = int(rng.integers(0, h - 4)), int(rng.integers(0, w - 4))
        m[y, x] = m[y + 1, x + 1] = m[y + 2, x] = m[y + 3, x + 1] = 1
        k = min(h, w) // 2
        m[np.arange(k), np.arange(k)[::-1] + w - k] = 1
    elif kind == "rings":
        c = (w // 2, h // 2)
        r = int(min(h, w) // 2 - 1)
        cv2.circle(m, c, r, 1, int(rng.integers(1, 4)))
    elif kind == "noise":
        m = (rng.random((h, w)) < rng.uniform(0.2, 0.8)).astype(np.uint8)
    else:  # touching every image border
        m[:, 0] = m[0, :] = m[-1, :] = 1
        m[h // 3 : 2 * h // 3, w - 3 :] = 1
    return m.astype(bool)


def _filled(mask: np.ndarray) -> np.ndarray:
    """The mask with every hole filled (8-connected foreground, as cv2.findContours)."""
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    out = np.zeros(mask.shape, np.uint8)
    cv2.drawContours(out, contours, -1, 1, -1)
    return out.astype(bool)


def _coco_raster(polys: list[np.ndarray], h: int, w: int) -> np.ndarray:
    if not polys:
        return np.zeros((h, w), bool)
    rles = mask_utils.frPyObjects([p.reshape(-1).tolist() for p in polys], h, w)
    return mask_utils.decode(mask_utils.merge(rles)).astype(bool)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def _shoelace(poly: np.ndarray) -> float:
    x, y = poly[:, 0], poly[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


@pytest.mark.parametrize("kind", KINDS)
def test_edge_polygons_exact_through_pycocotools(kind: str) -> None:
    worst_iou, differing = 1.0, 0
    for seed in range(40):
        mask = _mask(kind, seed)
        h, w = mask.shape
        polys = mask_to_polygons(mask, frame="edges")
        back = _coco_raster(polys, h, w)
        # Outer polygons carry no holes: pycocotools gives back the mask with holes filled in,
        # pixel for pixel, diagonal (8-connected) contacts included.
        differing += int((back ^ _filled(mask)).sum())
        if np.array_equal(_filled(mask), mask):
            worst_iou = min(worst_iou, _iou(back, mask))
        # The parts as samkit's own edge rasteriser sees them: the same pixels.
        np.testing.assert_array_equal(polygons_to_mask(polys, h, w, frame="edges"), back)
    print(f"{kind}: pixels differing from the hole-filled mask {differing}, "
          f"worst IoU on hole-free masks {worst_iou:.4f}")  # fmt: skip
    assert differing == 0
    assert worst_iou == 1.0


@pytest.mark.parametrize("kind", KINDS)
def test_edge_polygons_geometry(kind: str) -> None:
    """Integer corner vertices, axis-parallel edges, no repeated or straight-through vertices,
    and areas that add up to the pixel count (outer minus holes)."""
    for seed in range(20):
        mask = _mask(kind, seed)
        parts = mask_to_polygons_with_holes(mask, frame="edges")
        area = 0.0
        for outer, holes in parts:
            for ring in (outer, *holes):
                assert ring.dtype == np.float64 and len(ring) >= 4
                assert np.array_equal(ring, np.round(ring))
                step = np.roll(ring, -1, axis=0) - ring
                assert np.all((step[:, 0] == 0) ^ (step[:, 1] == 0))  # axis-parallel, no repeats
                turn = step[:, 0] * np.roll(step[:, 1], 1) - step[:, 1] * np.roll(step[:, 0], 1)
                assert np.all(turn != 0)  # every vertex is a corner
            area += _shoelace(outer) - sum(_shoelace(hole) for hole in holes)
        assert area == mask.sum()


@pytest.mark.parametrize("kind", KINDS)
def test_edge_polygons_with_holes_roundtrip_exactly(kind: str) -> None:
    for seed in range(40):
        mask = _mask(kind, seed)
        parts = mask_to_polygons_with_holes(mask, frame="edges")
        np.testing.assert_array_equal(polygons_to_mask(parts, *mask.shape, frame="edges"), mask)


def test_diagonal_contacts_and_single_pixels() -> None:
    mask = np.zeros((6, 6), bool)
    mask[1, 1] = mask[2, 2] = True  # one 8-connected part, two squares touching at (2, 2)
    (poly,) = mask_to_polygons(mask, frame="edges")
    corners = [tuple(p) for p in poly.astype(int).tolist()]
    assert corners.count((2, 2)) == 2  # the outline pinches through the shared corner
    assert _shoelace(poly) == 2
    np.testing.assert_array_equal(_coco_raster([poly], 6, 6), mask)
    # A single pixel is its unit square; the centre frame has no polygon for it.
    one = np.zeros((4, 5), bool)
    one[3, 4] = True
    (square,) = mask_to_polygons(one, frame="edges")
    assert sorted(map(tuple, square.tolist())) == [(4, 3), (4, 4), (5, 3), (5, 4)]
    assert mask_to_polygons(one) == []
    # A diamond of four pixels closes a background pixel off through diagonal contacts: the
    # outer polygon fills it in; with holes it stays open.
    diamond = np.zeros((5, 5), bool)
    diamond[[1, 2, 2, 3], [2, 1, 3, 2]] = True
    (outer,) = mask_to_polygons(diamond, frame="edges")
    filled = _coco_raster([outer], 5, 5)
    assert filled[2, 2] and (filled ^ diamond).sum() == 1
    ((_, holes),) = mask_to_polygons_with_holes(diamond, frame="edges")
    assert len(holes) == 1 and _shoelace(holes[0]) == 1
    np.testing.assert_array_equal(
        polygons_to_mask(mask_to_polygons_with_holes(diamond, frame="edges"), 5, 5, frame="edges"),
        diamond,
    )


def test_modes_and_tolerance_in_edge_frame() -> None:
    mask = np.zeros((90, 120), bool)
    cv2.circle(mask.view(np.uint8), (40, 45), 30, 1, -1)
    mask[5:15, 90:115] = True
    mask[70:71, 100:118] = True  # a 1-pixel-high strip
    merged = mask_to_polygons(mask, mode="merge", frame="edges")
    assert len(merged) == 1
    # zero-width bridges add no pixel in pycocotools nor in samkit's edge rasteriser
    np.testing.assert_array_equal(_coco_raster(merged, 90, 120), mask)
    np.testing.assert_array_equal(polygons_to_mask(merged, 90, 120, frame="edges"), mask)
    (largest,) = mask_to_polygons(mask, mode="largest", frame="edges")
    assert _shoelace(largest) == mask[:, :80].sum()
    for tol in (0.5, 1.0, 2.0):
        simple = mask_to_polygons(mask, tolerance=tol, frame="edges")
        assert len(simple) == 3  # simplification never drops a part
        iou = _iou(_coco_raster(simple, 90, 120), mask)
        own = _iou(polygons_to_mask(simple, 90, 120, frame="edges"), mask)
        print(f"tolerance {tol}: pycocotools IoU {iou:.4f}, samkit edge raster IoU {own:.4f}")
        assert iou >= 0.95 and own >= 0.95
    with pytest.raises(ValueError, match="frame must be"):
        mask_to_polygons(mask, frame="corners")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="frame must be"):
        polygons_to_mask([], 4, 4, frame="pixels")  # type: ignore[arg-type]


def test_coco_writer_polygons_exact(tmp_path: Path) -> None:
    """CocoWriter's polygons read back through pycocotools' COCO API give the masks exactly
    (holes aside), including single pixels and 1-pixel-wide lines."""
    coco_api = pytest.importorskip("pycocotools.coco")
    writer = CocoWriter(["thing"], segmentation="polygon")
    iid = writer.add_image("a.png", 48, 48)
    masks = []
    for kind, seed in [("blobs", 3), ("thin_lines", 4), ("pixels", 5), ("diagonal", 6)]:
        m = np.zeros((48, 48), bool)
        part = _filled(_mask(kind, seed))
        m[: part.shape[0], : part.shape[1]] = part
        masks.append(m)
        assert writer.add_annotation(iid, 1, m) is not None
    coco = coco_api.COCO(str(writer.write(tmp_path / "p.json")))
    anns = coco.loadAnns(coco.getAnnIds())
    assert len(anns) == len(masks)
    for ann, m in zip(anns, masks, strict=True):
        assert all(float(v).is_integer() for p in ann["segmentation"] for v in p)
        np.testing.assert_array_equal(coco.annToMask(ann).astype(bool), m)


# --------------------------------------------------------- centre frame and its rasterisers


def _pil_fill(polys: list[np.ndarray], h: int, w: int) -> np.ndarray:
    """LabelMe's ``labelme.utils.shape_to_mask`` for polygons: PIL ImageDraw, outline and fill."""
    from PIL import Image, ImageDraw

    img = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(img)
    for p in polys:
        draw.polygon([tuple(v) for v in p.tolist()], outline=1, fill=1)
    return np.asarray(img).astype(bool)


@pytest.mark.parametrize("kind", ["blobs", "rings", "diagonal", "thin_lines"])
def test_centre_frame_matches_pil_and_ultralytics_rasterisers(kind: str) -> None:
    """The centre frame is what LabelMe (PIL) and Ultralytics (cv2.fillPoly on int32 vertices)
    rasterise back onto the mask; the edge frame would grow masks by a pixel there."""
    for seed in range(15):
        mask = _mask(kind, seed)
        h, w = mask.shape
        kept = _filled(mask)
        polys = mask_to_polygons(mask)
        own = polygons_to_mask(polys, h, w)
        # Never outside the mask; 1-pixel-wide lines (a contour of 2 points) have no
        # centre-frame polygon, so only solid shapes come back whole.
        assert not (own & ~kept).any()
        if kind in ("blobs", "rings"):
            assert _iou(own, kept) >= 0.99
        np.testing.assert_array_equal(_pil_fill(polys, h, w), own)
        edges = mask_to_polygons(mask, frame="edges")
        if edges and kind == "blobs":
            assert (_pil_fill(edges, h, w) & ~kept).any()  # PIL overshoots edge polygons
        try:
            from ultralytics.data.utils import polygon2mask
        except ImportError:
            continue
        for p in polys:
            single = polygons_to_mask([p], h, w)
            np.testing.assert_array_equal(
                polygon2mask((h, w), [p.reshape(-1)]).astype(bool), single
            )
