"""Mask geometry: RLE (against pycocotools), boxes, small-region cleanup (against Meta), polygons."""

from __future__ import annotations

import zlib

import cv2
import numpy as np
import pytest

from samkit.masks import (
    area_from_rle,
    box_xyxy_to_xywh,
    coco_rle,
    coco_string_to_counts,
    mask_to_box,
    mask_to_rle,
    masks_to_rle,
    remove_small_regions,
    rle_to_coco_string,
    rle_to_mask,
)
from samkit.polygons import (
    mask_to_polygons,
    mask_to_polygons_with_holes,
    merge_polygons,
    polygons_to_mask,
)

mask_utils = pytest.importorskip("pycocotools.mask")

# pycocotools' own decode trips a NumPy 2 deprecation warning; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def _random_mask(rng: np.random.Generator, kind: str, h: int = 37, w: int = 53) -> np.ndarray:
    if kind == "empty":
        return np.zeros((h, w), bool)
    if kind == "full":
        return np.ones((h, w), bool)
    if kind == "pixel":
        m = np.zeros((h, w), bool)
        m[h // 3, w // 2] = True
        return m
    if kind == "first_pixel":
        m = np.zeros((h, w), bool)
        m[0, 0] = True
        return m
    if kind == "last_pixel":
        m = np.zeros((h, w), bool)
        m[-1, -1] = True
        return m
    if kind == "noise":
        return rng.random((h, w)) < 0.5
    # smooth blobs: thresholded blurred noise
    noise = cv2.GaussianBlur(rng.random((h, w)).astype(np.float32), (0, 0), 3)
    return noise > np.median(noise)


KINDS = ["empty", "full", "pixel", "first_pixel", "last_pixel", "noise", "blobs"]


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


# ------------------------------------------------------------------------------------ RLE


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("shape", [(37, 53), (1, 1), (1, 9), (64, 1), (200, 300)])
def test_rle_roundtrip_and_matches_pycocotools(kind: str, shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(zlib.crc32(repr((kind, shape)).encode()))
    mask = _random_mask(rng, kind, *shape)
    rle = mask_to_rle(mask)
    assert rle["size"] == list(shape)
    assert sum(rle["counts"]) == mask.size
    assert np.array_equal(rle_to_mask(rle), mask)
    assert area_from_rle(rle) == int(mask.sum())

    ref = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    mine = coco_rle(mask)
    assert isinstance(mine["counts"], str)
    assert mine["counts"].encode() == ref["counts"]  # byte for byte
    assert mine["size"] == [int(s) for s in ref["size"]]
    # both directions through the other implementation
    assert np.array_equal(mask_utils.decode(mine).astype(bool), mask)
    assert np.array_equal(rle_to_mask(ref), mask)
    assert coco_string_to_counts(ref["counts"]) == rle["counts"]
    assert area_from_rle(mine) == int(mask_utils.area(ref))
    # the uncompressed counts are what pycocotools compresses to the same string
    py = mask_utils.frPyObjects(rle, *shape)
    assert py["counts"] == ref["counts"]


def test_rle_many_random_masks_against_pycocotools() -> None:
    rng = np.random.default_rng(0)
    for _ in range(200):
        h, w = (int(v) for v in rng.integers(1, 40, 2))
        mask = rng.random((h, w)) < rng.random()
        ref = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
        assert coco_rle(mask)["counts"] == ref["counts"].decode()


def test_counts_codec_handles_large_and_decreasing_runs() -> None:
    # Deltas to the count two back go negative and need several chars: exercise the sign bit.
    counts = [5, 1_000_000, 3, 17, 2_000_000, 1, 0, 123_456_789, 31, 32, 16, 15]
    s = rle_to_coco_string(counts)
    assert coco_string_to_counts(s) == counts
    h, w = 1, sum(counts)
    ref = mask_utils.frPyObjects({"size": [h, w], "counts": counts}, h, w)
    assert ref["counts"].decode() == s


def test_rle_batch_matches_single() -> None:
    rng = np.random.default_rng(1)
    masks = np.stack([_random_mask(rng, k, 20, 30) for k in KINDS])
    batch = masks_to_rle(masks)
    assert batch == [mask_to_rle(m) for m in masks]
    assert masks_to_rle(np.zeros((0, 5, 5), bool)) == []


@pytest.mark.parametrize(
    ("rle", "match"),
    [
        ({"size": [2, 2], "counts": [1, 2]}, "sum to 3"),
        ({"size": [2, 2], "counts": [5, -1]}, "negative"),
        ({"size": [2], "counts": [4]}, "size"),
        ({"counts": [4]}, "'size' and 'counts'"),
        ({"size": [2, 2], "counts": "\x7f"}, "outside"),
        ({"size": [2, 2], "counts": "0h"}, "middle of a value"),
    ],
)
def test_rle_invalid(rle: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        rle_to_mask(rle)


@pytest.mark.parametrize("bad", [np.zeros(5, bool), np.zeros((2, 2, 2), bool)])
def test_mask_to_rle_rejects_wrong_ndim(bad: np.ndarray) -> None:
    with pytest.raises(ValueError, match="mask must have shape"):
        mask_to_rle(bad)


# ------------------------------------------------------------------------------------ boxes


def _naive_box(mask: np.ndarray) -> list[int]:
    ys, xs = [], []
    for y in range(mask.shape[0]):
        for x in range(mask.shape[1]):
            if mask[y, x]:
                ys.append(y)
                xs.append(x)
    return [min(xs), min(ys), max(xs), max(ys)] if xs else [0, 0, 0, 0]


def test_mask_to_box_matches_naive_loop() -> None:
    rng = np.random.default_rng(2)
    masks = np.stack([_random_mask(rng, k, 23, 31) for k in KINDS * 2])
    masks[-1] = False
    masks[-1, 5:9, 10:11] = True
    boxes = mask_to_box(masks)
    assert boxes.shape == (len(masks), 4)
    assert boxes.dtype == np.int64
    assert boxes.tolist() == [_naive_box(m) for m in masks]
    assert mask_to_box(masks[-1]).tolist() == [10, 5, 10, 8]  # (H, W) -> (4,)
    assert mask_to_box(masks.reshape(2, 7, 23, 31)).shape == (2, 7, 4)
    assert mask_to_box(np.zeros((0, 4, 4), bool)).shape == (0, 4)


def test_mask_to_box_matches_meta() -> None:
    torch = pytest.importorskip("torch")
    amg = pytest.importorskip("segment_anything.utils.amg")
    rng = np.random.default_rng(3)
    masks = np.stack([_random_mask(rng, k, 23, 31) for k in KINDS])
    ref = amg.batched_mask_to_box(torch.from_numpy(masks)).numpy()
    assert np.array_equal(mask_to_box(masks), ref)
    # Meta's box_xyxy_to_xywh takes one box at a time
    xywh = np.stack([amg.box_xyxy_to_xywh(torch.from_numpy(b)).numpy() for b in ref])
    assert np.array_equal(box_xyxy_to_xywh(ref), xywh)


def test_box_xyxy_to_xywh() -> None:
    out = box_xyxy_to_xywh(np.array([[1, 2, 4, 8], [0, 0, 0, 0]]))
    assert out.tolist() == [[1, 2, 3, 6], [0, 0, 0, 0]]
    with pytest.raises(ValueError, match="boxes must have shape"):
        box_xyxy_to_xywh(np.zeros((2, 3)))


# ------------------------------------------------------------------------- small regions


@pytest.mark.parametrize("mode", ["holes", "islands"])
@pytest.mark.parametrize("area_thresh", [0, 1, 5, 30, 200, 10_000])
@pytest.mark.parametrize("kind", ["empty", "full", "pixel", "noise", "blobs"])
def test_remove_small_regions_matches_meta(mode: str, area_thresh: int, kind: str) -> None:
    amg = pytest.importorskip("segment_anything.utils.amg")
    rng = np.random.default_rng(zlib.crc32(repr((mode, area_thresh, kind)).encode()))
    mask = _random_mask(rng, kind, 48, 64)
    ref_mask, ref_changed = amg.remove_small_regions(mask, area_thresh, mode)
    out, changed = remove_small_regions(mask, area_thresh, mode)  # type: ignore[arg-type]
    assert changed == ref_changed
    assert out.dtype == bool
    assert np.array_equal(out, ref_mask)


def test_remove_small_regions_invalid_mode() -> None:
    with pytest.raises(ValueError, match="mode must be"):
        remove_small_regions(np.zeros((4, 4), bool), 10, "dots")  # type: ignore[arg-type]


# ------------------------------------------------------------------------------- polygons


def _disc() -> np.ndarray:
    m = np.zeros((120, 140), np.uint8)
    cv2.circle(m, (70, 60), 45, 1, -1)
    return m.astype(bool)


def _ring() -> np.ndarray:
    m = np.zeros((120, 140), np.uint8)
    cv2.circle(m, (70, 60), 50, 1, -1)
    cv2.circle(m, (70, 60), 25, 0, -1)
    return m.astype(bool)


def _two_squares() -> np.ndarray:
    m = np.zeros((120, 140), bool)
    m[10:50, 10:50] = True  # larger
    m[70:100, 90:120] = True
    return m


SHAPES = {"disc": _disc, "ring": _ring, "two_squares": _two_squares}


@pytest.mark.parametrize(
    ("shape", "mode", "n_polys", "min_iou"),
    [
        ("disc", "all", 1, 0.95),
        ("disc", "largest", 1, 0.95),
        ("disc", "merge", 1, 0.95),
        ("ring", "all", 1, None),
        ("ring", "largest", 1, None),
        ("ring", "merge", 1, None),
        ("two_squares", "all", 2, 0.95),
        ("two_squares", "largest", 1, None),
        ("two_squares", "merge", 1, 0.9),
    ],
)
@pytest.mark.parametrize("tolerance", [0.0, 1.0])
def test_mask_to_polygons_modes(
    shape: str, mode: str, n_polys: int, min_iou: float | None, tolerance: float
) -> None:
    mask = SHAPES[shape]()
    polys = mask_to_polygons(mask, mode=mode, tolerance=tolerance)  # type: ignore[arg-type]
    assert len(polys) == n_polys
    for p in polys:
        assert p.ndim == 2 and p.shape[1] == 2 and len(p) >= 3
        assert p.dtype == np.float64
    back = polygons_to_mask(polys, *mask.shape)
    if min_iou is not None:
        iou = _iou(back, mask)
        print(f"{shape}/{mode}/tol={tolerance}: IoU {iou:.4f}")
        assert iou >= min_iou
    elif shape == "ring":  # outer polygons only: the hole is filled in
        filled = np.zeros(mask.shape, np.uint8)
        cv2.circle(filled, (70, 60), 50, 1, -1)
        assert _iou(back, filled.astype(bool)) >= 0.95
    else:  # largest of two squares: exactly the bigger square
        big = np.zeros_like(mask)
        big[10:50, 10:50] = True
        assert _iou(back, big) >= 0.95


def test_merge_covers_every_part_with_one_polygon() -> None:
    mask = np.zeros((100, 100), bool)
    for y, x in [(5, 5), (5, 70), (70, 5), (70, 70), (40, 40)]:
        mask[y : y + 20, x : x + 20] = True
    (merged,) = mask_to_polygons(mask, mode="merge")
    back = polygons_to_mask([merged], 100, 100)
    assert (back & mask).sum() == mask.sum()  # every part covered
    assert _iou(back, mask) >= 0.9
    assert np.array_equal(merge_polygons([merged]), merged)
    with pytest.raises(ValueError, match="at least one"):
        merge_polygons([])


def test_polygons_with_holes_reproduce_ring_exactly() -> None:
    mask = _ring()
    parts = mask_to_polygons_with_holes(mask)
    assert len(parts) == 1
    outer, holes = parts[0]
    assert len(holes) == 1
    assert np.array_equal(polygons_to_mask(parts, *mask.shape), mask)
    # without holes the ring is filled in
    filled = polygons_to_mask([outer], *mask.shape)
    assert filled.sum() > mask.sum() and _iou(filled, mask) < 0.9


def test_object_inside_hole_survives_rasterisation() -> None:
    mask = _ring()
    mask[55:65, 65:75] = True  # an island inside the hole
    parts = mask_to_polygons_with_holes(mask)
    assert len(parts) == 2
    assert np.array_equal(polygons_to_mask(parts, *mask.shape), mask)


@pytest.mark.parametrize(
    ("mask", "expected"),
    [
        (np.zeros((10, 10), bool), 0),
        (np.pad(np.ones((1, 1), bool), 4), 0),  # single pixel: 1 point, dropped
        (np.pad(np.ones((1, 2), bool), 4), 0),  # 2 points, dropped
        (np.pad(np.ones((2, 2), bool), 4), 1),
    ],
)
def test_degenerate_polygons_dropped(mask: np.ndarray, expected: int) -> None:
    for mode in ("all", "largest", "merge"):
        assert len(mask_to_polygons(mask, mode=mode)) == expected


def test_polygon_argument_errors() -> None:
    with pytest.raises(ValueError, match="mode must be"):
        mask_to_polygons(_disc(), mode="biggest")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="tolerance"):
        mask_to_polygons(_disc(), tolerance=-1)
    with pytest.raises(ValueError, match="mask must have shape"):
        mask_to_polygons(np.zeros((2, 2, 2), bool))
    with pytest.raises(ValueError, match="height and width"):
        polygons_to_mask([], 0, 5)
