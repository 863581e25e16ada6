"""Segment everything's speed paths: the decoder's output limits (exact), fast mode's skipped
points (covered by kept masks) and its agreement with exact mode."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from amg_weights import blob_weights
from reference import make_image, randomize, reference_vit
from samkit.build import build_from_config
from samkit.modeling.decoder_fast import OutputLimits
from samkit.predictor import SamPredictor
from samkit.registry import SamConfig, ViTConfig

TINY_VIT = ViTConfig(embed_dim=64, depth=1, num_heads=2, global_attn_indexes=())


@pytest.fixture(scope="module")
def blob_model() -> torch.nn.Module:
    state = blob_weights(randomize(reference_vit(TINY_VIT), 0))
    model = build_from_config(SamConfig(encoder=TINY_VIT))
    model.load_state_dict(state)
    return model.eval()


def test_output_limits_compute_the_same_logits(blob_model) -> None:
    """Limited decoding (rows / columns of the resized image, prompts above an IoU floor)
    returns the unlimited call's values where it computes, zeros elsewhere, same IoUs."""
    predictor = SamPredictor(blob_model)
    predictor.set_image(make_image(300, 640, seed=1))
    gen = torch.Generator().manual_seed(0)
    pts = torch.rand(12, 1, 2, generator=gen) * torch.tensor([1024.0, 480.0])
    labels = torch.ones(12, 1, dtype=torch.int)
    full, iou = predictor.decode_low_res(pts, labels)
    limits = OutputLimits(rows=122, cols=250, iou_floor=0.9)
    cut, iou_cut = predictor.decode_low_res(pts, labels, limits=limits)
    active = (iou > 0.9).any(1)
    assert torch.equal(iou, iou_cut)
    assert 0 < int(active.sum()) < len(active), "the IoU floor should drop some prompts"
    assert torch.equal(cut[active][..., :124, :252], full[active][..., :124, :252])
    assert not cut[~active].any() and not cut[..., 124:, :].any() and not cut[..., 252:].any()
    assert not torch.equal(full[..., 124:, :], torch.zeros_like(full[..., 124:, :]))


def test_skipped_points_are_covered_by_kept_masks(blob_model, capsys) -> None:
    """skip_covered (hierarchical sampling): every skipped grid point lies inside a mask kept for
    its crop; the run reports what it decoded and skipped (stats, verbose)."""
    from samkit import SamAutomaticMaskGenerator
    from samkit.amg.fast import covered_by

    image = make_image(240, 320, seed=1)
    gen = SamAutomaticMaskGenerator(
        blob_model,
        points_per_side=8,
        skip_covered=True,
        verbose=True,
        output_mode="uncompressed_rle",
    )
    records = gen.generate(image)
    stats = gen.stats
    assert stats.mode == "fast" and stats.points == 64 and stats.kept == len(records)
    assert stats.skipped > 10 and stats.decoded + stats.skipped == stats.points
    assert "points decoded" in capsys.readouterr().out
    skipped = gen.skipped_points
    assert skipped.shape == (stats.skipped, 2)
    assert covered_by([r["segmentation"] for r in records], skipped).all()
    grid = gen.point_grids[0] * np.array([320, 240])
    assert all((np.abs(grid - p).sum(1) < 1e-6).any() for p in skipped)  # grid points


def test_fast_keeps_exact_masks_of_decoded_points(blob_model) -> None:
    """fast=True changes which points are decoded, not the masks: every fast mask that exact
    mode also keeps (same point, same predicted IoU) is the same mask, pixel for pixel."""
    from samkit import SamAutomaticMaskGenerator

    image = make_image(240, 320, seed=1)
    exact = SamAutomaticMaskGenerator(blob_model, points_per_side=8).generate(image)
    fast_gen = SamAutomaticMaskGenerator(blob_model, points_per_side=8, fast=True)
    fast = fast_gen.generate(image)
    assert fast_gen.stats.skipped > 10, "the fast run should skip points"
    by_key = {(tuple(r["point_coords"][0]), r["predicted_iou"]): r for r in exact}
    shared = [
        (r, by_key[k])
        for r in fast
        if (k := (tuple(r["point_coords"][0]), r["predicted_iou"])) in by_key
    ]
    assert len(shared) >= 5, f"only {len(shared)} masks shared with exact mode"
    for ours, ref in shared:
        assert np.array_equal(ours["segmentation"], ref["segmentation"])
        assert ours["bbox"] == ref["bbox"] and ours["stability_score"] == ref["stability_score"]


def test_covered_by_reads_rle_runs() -> None:
    from samkit.amg.fast import covered_by
    from samkit.masks import mask_to_rle

    mask = np.zeros((7, 9), dtype=bool)
    mask[2:5, 3:8] = True
    pts = np.array([[3, 2], [7, 4], [2, 2], [8, 4], [5, 6], [0, 0]], dtype=np.float64)
    got = covered_by([mask_to_rle(mask)], pts)
    assert got.tolist() == [mask[int(y), int(x)] for x, y in pts]


def test_fast_switch_everywhere(blob_model) -> None:
    """One switch: the generator, the front and the CLI's key table take ``fast``; Results carry
    the run's stats."""
    from samkit import SamAutomaticMaskGenerator
    from samkit.cli import EVERYTHING_KEYS
    from samkit.model import SAM

    gen = SamAutomaticMaskGenerator(blob_model, points_per_side=4, fast=True)
    assert gen.speed.skip_covered and not gen.speed.low_res_filter and not gen.speed.bf16
    assert "fast" in EVERYTHING_KEYS and "verbose" in EVERYTHING_KEYS
    result = SAM(blob_model, device="cpu")(
        make_image(120, 160, seed=2), points_per_side=4, fast=True
    )[0]
    assert result.stats["mode"] == "fast" and result.stats["points"] == 16
    assert result.stats["kept"] == len(result)
