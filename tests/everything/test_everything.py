"""Segment everything's speed paths: the decoder's output limits (exact), fast mode's skipped
points (covered by kept masks) and its agreement with exact mode."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from amg_weights import RegionEncoder, blob_weights, object_weights
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


@pytest.fixture(scope="module")
def object_model() -> torch.nn.Module:
    """Masks made of whole regions of a Voronoi tessellation: every point of one region gets
    the same masks (tests/amg_weights.py, object_weights)."""
    state = object_weights(randomize(reference_vit(TINY_VIT), 0))
    model = build_from_config(SamConfig(encoder=TINY_VIT))
    model.load_state_dict(state)
    model.image_encoder = RegionEncoder(model.image_encoder, n_regions=10)
    return model.eval()


def agreement(exact: list[dict], other: list[dict]) -> tuple[float, float]:
    """(recall, mean IoU): exact masks matched one to one (greedy by IoU) at IoU >= 0.9."""
    a = np.stack([r["segmentation"].ravel() for r in exact]).astype(np.float32)
    b = np.stack([r["segmentation"].ravel() for r in other]).astype(np.float32)
    inter = a @ b.T
    iou = inter / (a.sum(1)[:, None] + b.sum(1)[None] - inter)
    used_a, used_b, ious = set(), set(), []
    for flat in np.argsort(-iou, axis=None, kind="stable"):
        i, j = divmod(int(flat), iou.shape[1])
        if iou[i, j] > 0 and i not in used_a and j not in used_b:
            used_a.add(i)
            used_b.add(j)
            ious.append(float(iou[i, j]))
    return sum(v >= 0.9 for v in ious) / len(exact), float(np.mean(ious))


def test_fast_mode_on_objects_skips_interiors_and_keeps_the_masks(object_model) -> None:
    """On masks made of objects, fast mode decodes only part of the grid (points whose
    neighbours all lie in one accepted mask are skipped) and finds nearly every exact mask;
    every skipped point lies inside a kept mask."""
    from samkit import SamAutomaticMaskGenerator
    from samkit.amg.fast import covered_by
    from samkit.masks import mask_to_rle

    image = make_image(240, 320, seed=1)
    exact = SamAutomaticMaskGenerator(object_model, points_per_side=16).generate(image)
    gen = SamAutomaticMaskGenerator(object_model, points_per_side=16, fast=True)
    fast = gen.generate(image)
    assert len(exact) >= 8, f"exact mode drew only {len(exact)} masks: the test would be weak"
    assert gen.stats.skipped >= 0.3 * gen.stats.points, gen.stats
    recall, mean_iou = agreement(exact, fast)
    print(f"objects: {len(exact)} exact masks, fast {len(fast)}, {gen.stats.line()}, "
          f"recall {recall:.3f}, mean IoU {mean_iou:.4f}")  # fmt: skip
    assert recall >= 0.9 and mean_iou >= 0.97
    rles = [mask_to_rle(r["segmentation"]) for r in fast]
    assert covered_by(rles, gen.skipped_points).all()


def test_fast_mode_with_crop_layers_and_a_user_grid(object_model) -> None:
    """Fast mode per crop (crop_n_layers=1: each crop's grid is sampled on its own) and on a
    user grid (no neighbours: a point any accepted mask covers is skipped); skipped points lie
    inside kept masks of the original image either way."""
    from samkit import SamAutomaticMaskGenerator
    from samkit.amg.fast import covered_by
    from samkit.masks import mask_to_rle

    image = make_image(240, 320, seed=1)
    crops = SamAutomaticMaskGenerator(object_model, points_per_side=8, crop_n_layers=1, fast=True)
    out = crops.generate(image)
    assert len({tuple(r["crop_box"]) for r in out}) > 1, "masks should come from several crops"
    assert crops.stats.points == 5 * 64 and crops.stats.skipped > 0
    rles = [mask_to_rle(r["segmentation"]) for r in out]
    assert covered_by(rles, crops.skipped_points).all()
    rng = np.random.default_rng(0)
    grid = rng.random((90, 2))  # not square: the any-mask rule
    user = SamAutomaticMaskGenerator(
        object_model, points_per_side=None, point_grids=[grid], fast=True
    )
    out = user.generate(image)
    assert user.stats.skipped > 0 and len(out) > 0
    assert covered_by([mask_to_rle(r["segmentation"]) for r in out], user.skipped_points).all()


def test_fast_mode_asks_every_neighbour() -> None:
    """A grid point is skipped only if every sparse neighbour's accepted masks cover it: one
    neighbour in another object is enough to decode it."""
    from samkit.amg.fast import Coverage, sparse_first

    side = 5
    points = np.stack(np.meshgrid(np.arange(side), np.arange(side)), -1).reshape(-1, 2) * 40.0 + 20
    cover = Coverage((200, 200), (200, 200), 256, 256, points)
    sparse, dense = sparse_first(len(points))
    assert sorted(cover.neighbours(1 * side + 1)) == [0, 2, 10, 12]  # diagonal corners
    assert sorted(cover.neighbours(0 * side + 1)) == [0, 2]
    assert sorted(cover.neighbours(3 * side + 4)) == [14, 24]

    def mask_left_of(x: float) -> np.ndarray:
        m = np.zeros((1, 256, 256), dtype=bool)
        m[:, :, : int(x)] = True
        return m

    # sparse columns x = 20, 100, 180: masks reaching x < 120, x < 160 and none
    reach = {20.0: mask_left_of(120), 100.0: mask_left_of(160), 180.0: mask_left_of(0)}
    for q in sparse:
        cover.add(reach[float(points[q][0])], points[q][None])
    hit = dict(zip(dense.tolist(), cover.covered(dense), strict=True))
    assert hit[0 * side + 1] and hit[1 * side + 0]  # x = 60 (both neighbours reach it), x = 20
    assert hit[1 * side + 1]  # x = 60 between four covering corners
    # x = 140: the neighbour at x = 100 covers it, the one at x = 180 does not -> decoded
    assert not hit[0 * side + 3] and not hit[1 * side + 3]
    assert cover.map[int(points[3][1]), int(points[3][0])]  # though a mask covers it


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
