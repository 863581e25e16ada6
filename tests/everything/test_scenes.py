"""Segment everything, exact mode: the very same masks as Meta's generator on the scene kinds of
``benchmarks/bench_everything.py`` (portrait and landscape frames, masks up to most of the
image, every mask past ``pred_iou_thresh``, filters off), at test size."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from amg_weights import HIGH_IOU, IOU_BASE, LARGE_THRESH, THRESH, blob_pair
from reference import make_image
from samkit.automatic import SamAutomaticMaskGenerator
from samkit.registry import ViTConfig

TINY_VIT = ViTConfig(embed_dim=64, depth=1, num_heads=2, global_attn_indexes=())
PORTRAIT, LANDSCAPE = (320, 240), (240, 320)
FILTERS_OFF = {"pred_iou_thresh": 0.0, "stability_score_thresh": 0.0}


@pytest.fixture(scope="module")
def large_models() -> tuple[torch.nn.Module, torch.nn.Module]:
    """Discs of 15-85 % of the image, every mask above the default ``pred_iou_thresh``."""
    return blob_pair(TINY_VIT, LARGE_THRESH, HIGH_IOU)


@pytest.fixture(scope="module")
def small_models() -> tuple[torch.nn.Module, torch.nn.Module]:
    return blob_pair(TINY_VIT, THRESH, IOU_BASE)


def reference_generate(model: torch.nn.Module, img: np.ndarray, **kw: object) -> list[dict]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from segment_anything import SamAutomaticMaskGenerator as RefGenerator

        return RefGenerator(model, **kw).generate(img)


def assert_same_masks(ref: list[dict], ours: list[dict], min_count: int) -> None:
    """Same records up to order: pixels, boxes, areas, points, crops and scores."""
    assert len(ref) >= min_count, f"reference drew only {len(ref)} masks: the test would be weak"
    assert len(ours) == len(ref)

    def key(r: dict) -> tuple:
        return (tuple(r["point_coords"][0]), r["predicted_iou"], r["segmentation"].tobytes())

    by_key = {key(r): r for r in ours}
    for r in ref:
        o = by_key.get(key(r))
        assert o is not None, f"no identical mask for the reference's at {r['point_coords']}"
        assert o["bbox"] == r["bbox"] and o["area"] == r["area"] == int(r["segmentation"].sum())
        assert o["crop_box"] == r["crop_box"]
        assert o["stability_score"] == pytest.approx(r["stability_score"], abs=1e-6)


@pytest.mark.parity
@pytest.mark.parametrize(
    ("shape", "params", "min_count"),
    [
        (PORTRAIT, {"points_per_side": 5}, 3),
        pytest.param(LANDSCAPE, {"points_per_side": 5}, 3, marks=pytest.mark.slow),
        (PORTRAIT, {"points_per_side": 4, **FILTERS_OFF}, 3),
    ],
    ids=["portrait", "landscape", "portrait_filters_off"],
)
def test_large_masks_same_as_reference(large_models, shape, params, min_count) -> None:
    ref_model, ours = large_models
    image = make_image(*shape, seed=2)
    ref = reference_generate(ref_model, image, **params)
    out = SamAutomaticMaskGenerator(ours, **params).generate(image)
    assert_same_masks(ref, out, min_count)
    h, w = shape
    assert max(r["area"] for r in out) > 0.4 * h * w, "the scene should have large masks"


@pytest.mark.slow
@pytest.mark.parity
@pytest.mark.parametrize(
    ("shape", "params"),
    [(PORTRAIT, {"points_per_side": 5}), (LANDSCAPE, {"points_per_side": 4, **FILTERS_OFF})],
    ids=["portrait", "landscape_filters_off"],
)
def test_small_masks_same_as_reference(small_models, shape, params) -> None:
    ref_model, ours = small_models
    image = make_image(*shape, seed=2)
    ref = reference_generate(ref_model, image, **params)
    out = SamAutomaticMaskGenerator(ours, **params).generate(image)
    assert_same_masks(ref, out, 5)
