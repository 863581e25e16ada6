"""Segment everything: parity with Meta's SamAutomaticMaskGenerator on deterministic weights
that draw real masks (tests/amg_weights.py), NMS parity with torchvision, parameters, output
modes and the opt-in low-res filter."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from amg_weights import blob_pair
from reference import make_image
from samkit.amg.grid import generate_crop_boxes, uncrop_rle
from samkit.amg.nms import batched_nms
from samkit.amg.records import Candidates, postprocess_small_regions
from samkit.automatic import ULTRALYTICS_ARGS, SamAutomaticMaskGenerator, everything_params
from samkit.errors import SamkitError
from samkit.masks import mask_to_box, mask_to_rle, rle_to_mask
from samkit.registry import ViTConfig

# The blob model's encoder output is its position embedding, so the smallest ViT will do.
TINY_VIT = ViTConfig(embed_dim=64, depth=1, num_heads=2, global_attn_indexes=())
IMAGE_HW = (240, 320)


@pytest.fixture(scope="module")
def models() -> tuple[torch.nn.Module, torch.nn.Module]:
    return blob_pair(TINY_VIT)


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    return make_image(*IMAGE_HW, seed=1)


def reference_generate(model: torch.nn.Module, img: np.ndarray, **kw: object) -> list[dict]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from segment_anything import SamAutomaticMaskGenerator as RefGenerator

        return RefGenerator(model, **kw).generate(img)


def match(ref: list[dict], ours: list[dict]) -> list[tuple[int, int, float]]:
    """One-to-one pairs (i, j, mask IoU), greedily by IoU (same prompt and crop first)."""
    a = np.stack([r["segmentation"] for r in ref]).reshape(len(ref), -1).astype(np.float32)
    b = np.stack([r["segmentation"] for r in ours]).reshape(len(ours), -1).astype(np.float32)
    inter = a @ b.T
    iou = inter / (a.sum(1)[:, None] + b.sum(1)[None] - inter)
    same = np.array(
        [
            [
                r["point_coords"] == o["point_coords"] and r["crop_box"] == o["crop_box"]
                for o in ours
            ]
            for r in ref
        ]
    )
    score = iou + same
    pairs = []
    used_a, used_b = set(), set()
    for flat in np.argsort(-score, axis=None, kind="stable"):
        i, j = divmod(int(flat), len(ours))
        if i not in used_a and j not in used_b:
            pairs.append((i, j, float(iou[i, j])))
            used_a.add(i)
            used_b.add(j)
    return pairs


def assert_parity(ref: list[dict], ours: list[dict], min_count: int) -> None:
    assert len(ref) >= min_count, f"reference drew only {len(ref)} masks: the test would be weak"
    assert len(ours) == len(ref)
    pairs = match(ref, ours)
    ious = np.array([p[2] for p in pairs])
    d_iou = max(abs(ref[i]["predicted_iou"] - ours[j]["predicted_iou"]) for i, j, _ in pairs)
    d_stab = max(abs(ref[i]["stability_score"] - ours[j]["stability_score"]) for i, j, _ in pairs)
    exact = sum(
        np.array_equal(ref[i]["segmentation"], ours[i]["segmentation"]) for i in range(len(ref))
    )
    print(
        f"masks {len(ref)}: min matched IoU {ious.min():.5f}, identical in order {exact}/{len(ref)}, "
        f"max |d predicted_iou| {d_iou:.2e}, max |d stability| {d_stab:.2e}"
    )
    assert ious.min() >= 0.99
    assert d_iou <= 1e-3 and d_stab <= 1e-3
    for i, j, _ in pairs:
        assert ref[i]["crop_box"] == ours[j]["crop_box"]
        assert np.allclose(ref[i]["point_coords"], ours[j]["point_coords"])
        assert np.abs(np.subtract(ref[i]["bbox"], ours[j]["bbox"])).max() <= 1
        assert set(ours[j]) == set(ref[i])


# ------------------------------------------------------------------------------ parity
@pytest.mark.parity
@pytest.mark.parametrize(
    ("params", "min_count"),
    [
        ({"points_per_side": 6}, 20),
        pytest.param(
            {"points_per_side": 4, "crop_n_layers": 1, "crop_n_points_downscale_factor": 2},
            20,
            marks=pytest.mark.ci,
        ),
        pytest.param(
            {"points_per_side": 5, "min_mask_region_area": 3000, "output_mode": "binary_mask"},
            20,
            marks=pytest.mark.slow,
        ),
    ],
    ids=["default", "crop_layers", "min_region_area"],
)
def test_parity_with_reference(models, image, params, min_count) -> None:
    ref_model, ours = models
    ref = reference_generate(ref_model, image, **params)
    out = SamAutomaticMaskGenerator(ours, **params).generate(image)
    assert_parity(ref, out, min_count)
    if params.get("crop_n_layers"):
        assert len({tuple(r["crop_box"]) for r in out}) > 1, "masks should come from several crops"
    if params.get("min_mask_region_area"):
        # The cleanup must have mattered: without it the output differs.
        plain = {k: v for k, v in params.items() if k != "min_mask_region_area"}
        before = SamAutomaticMaskGenerator(ours, **plain).generate(image)
        assert len(before) != len(out) or any(
            not np.array_equal(a["segmentation"], b["segmentation"])
            for a, b in zip(before, out, strict=False)
        )


@pytest.mark.slow
@pytest.mark.parity
def test_parity_filters_off_and_explicit_grid(models, image) -> None:
    """Filters disabled (every candidate upsampled) and a user point grid."""
    ref_model, ours = models
    grid = np.random.default_rng(0).uniform(0.05, 0.95, size=(20, 2))
    params = {
        "points_per_side": None,
        "point_grids": [grid],
        "pred_iou_thresh": 0.0,
        "stability_score_thresh": 0.0,
    }
    ref = reference_generate(ref_model, image, **params)
    out = SamAutomaticMaskGenerator(ours, **params).generate(image)
    assert_parity(ref, out, 20)


@pytest.mark.slow
def test_output_modes_agree(models, image) -> None:
    _, ours = models
    from pycocotools import mask as mask_utils

    base = SamAutomaticMaskGenerator(ours, points_per_side=4)
    binary = base.generate(image)
    assert len(binary) >= 5
    base.output_mode = "uncompressed_rle"
    unc = base.generate(image)
    base.output_mode = "coco_rle"
    coco = base.generate(image)
    for b, u, c in zip(binary, unc, coco, strict=True):
        assert b["segmentation"].shape == IMAGE_HW and b["segmentation"].dtype == bool
        assert np.array_equal(rle_to_mask(u["segmentation"]), b["segmentation"])
        assert isinstance(c["segmentation"]["counts"], str)
        expected = mask_utils.encode(np.asfortranarray(b["segmentation"].astype(np.uint8)))
        assert c["segmentation"]["counts"] == expected["counts"].decode()
        assert b["area"] == int(b["segmentation"].sum()) == u["area"] == c["area"]
        x, y, w, h = b["bbox"]
        ys, xs = np.nonzero(b["segmentation"])
        assert (x, y, x + w, y + h) == (xs.min(), ys.min(), xs.max(), ys.max())


@pytest.mark.ci
def test_low_res_filter_agrees_with_exact(models, image) -> None:
    """The opt-in low-res filter keeps (nearly) the same masks, with full-res segmentations."""
    _, ours = models
    exact = SamAutomaticMaskGenerator(ours, points_per_side=6).generate(image)
    fast = SamAutomaticMaskGenerator(ours, points_per_side=6, low_res_filter=True).generate(image)
    pairs = match(exact, fast)
    mean_iou = float(np.mean([p[2] for p in pairs]))
    print(
        f"low-res filter: {len(fast)} masks vs {len(exact)} exact, mean matched IoU {mean_iou:.4f}"
    )
    assert abs(len(fast) - len(exact)) <= max(2, 0.1 * len(exact))
    assert mean_iou >= 0.95
    by_point = {(tuple(r["point_coords"][0]), r["predicted_iou"]): r for r in exact}
    same = [
        by_point[k]
        for k in ((tuple(r["point_coords"][0]), r["predicted_iou"]) for r in fast)
        if k in by_point
    ]
    assert len(same) >= 0.8 * len(fast)


# ---------------------------------------------------------------------------------- NMS
@pytest.mark.parametrize("n", [0, 1, 300, 1500])
@pytest.mark.parametrize("thresh", [0.3, 0.7])
def test_nms_matches_torchvision(n, thresh) -> None:
    """Same kept set and order as torchvision, with many exactly tied scores (the reference
    feeds 1/crop-area and 0/1 scores)."""
    from torchvision.ops import batched_nms as tv_batched_nms

    gen = torch.Generator().manual_seed(n)
    xy = torch.randint(0, 200, (n, 2), generator=gen).float()
    wh = torch.randint(1, 80, (n, 2), generator=gen).float()
    boxes = torch.cat([xy, xy + wh], dim=1)
    scores = torch.randint(0, 5, (n,), generator=gen).float() / 4  # heavy ties
    for cats in (torch.zeros(n, dtype=torch.int64), torch.randint(0, 3, (n,), generator=gen)):
        ours = batched_nms(boxes, scores, cats, thresh)
        ref = tv_batched_nms(boxes, scores, cats, thresh)
        assert sorted(ours.tolist()) == sorted(ref.tolist())
        assert torch.all(scores[ours][1:] <= scores[ours][:-1])
        if n <= 1000 and bool((cats == 0).all()):
            # torchvision's single-kernel path: stable by score, like ours (its >1000-box path
            # re-sorts with an unstable sort, so only the set and the score order are comparable).
            assert ours.tolist() == ref.tolist()


def test_nms_iou_at_threshold() -> None:
    """IoU exactly at the threshold is kept (suppression needs IoU > threshold)."""
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 5.0], [0.0, 0.0, 10.0, 4.0]])
    scores = torch.tensor([0.9, 0.8, 0.7])
    assert batched_nms(boxes, scores, torch.zeros(3, dtype=torch.int64), 0.5).tolist() == [0, 1]
    with pytest.raises(ValueError, match="scores"):
        batched_nms(boxes, scores[:2], torch.zeros(3, dtype=torch.int64), 0.5)


# ----------------------------------------------------------------- pieces vs reference
@pytest.mark.parametrize("size", [(240, 320), (720, 1280), (3000, 4000), (333, 111)])
@pytest.mark.parametrize("layers", [0, 1, 2])
def test_crop_boxes_match_reference(size, layers) -> None:
    from segment_anything.utils.amg import generate_crop_boxes as ref_boxes

    assert generate_crop_boxes(size, layers, 512 / 1500) == ref_boxes(size, layers, 512 / 1500)


def test_uncrop_rle() -> None:
    rng = np.random.default_rng(0)
    crop = rng.random((30, 40)) > 0.5
    full = np.zeros((100, 120), dtype=bool)
    full[20:50, 70:110] = crop
    assert np.array_equal(
        rle_to_mask(uncrop_rle(mask_to_rle(crop), [70, 20, 110, 50], 100, 120)), full
    )


def test_small_region_cleanup_matches_reference() -> None:
    """Masks with small holes and islands: same masks, boxes and NMS choice as Meta's."""
    from segment_anything import SamAutomaticMaskGenerator as RefGenerator
    from segment_anything.utils.amg import MaskData

    rng = np.random.default_rng(3)
    masks = []
    for _ in range(12):
        m = np.zeros((60, 80), dtype=bool)
        y, x = rng.integers(5, 30), rng.integers(5, 40)
        m[y : y + 25, x : x + 30] = True
        m[y + 5 : y + 5 + rng.integers(1, 4), x + 5 : x + 8] = False  # small hole
        if rng.random() < 0.5:
            iy, ix = rng.integers(0, 55), rng.integers(0, 75)
            m[iy : iy + 2, ix : ix + 2] = True  # small island
        masks.append(m)
    rles = [mask_to_rle(m) for m in masks]
    boxes = mask_to_box(np.stack(masks))
    data = Candidates(
        rles=list(rles),
        boxes=boxes,
        iou_preds=rng.random(12).astype(np.float32),
        stability=rng.random(12).astype(np.float32),
        points=rng.random((12, 2)),
        crop_boxes=np.tile([0, 0, 80, 60], (12, 1)),
    )
    ref = RefGenerator.postprocess_small_regions(
        MaskData(
            rles=list(rles),
            boxes=torch.from_numpy(boxes),
            iou_preds=torch.from_numpy(data.iou_preds),
        ),
        10,
        0.7,
    )
    ours = postprocess_small_regions(data, 10, 0.7)
    assert len(ours) == len(ref["rles"]) >= 3
    assert np.array_equal(ours.boxes, ref["boxes"].numpy())
    assert np.array_equal(ours.iou_preds, ref["iou_preds"].numpy())
    for a, b in zip(ours.rles, ref["rles"], strict=True):
        assert np.array_equal(rle_to_mask(a), rle_to_mask(b))


# --------------------------------------------------------------------------- parameters
def test_everything_params_accepts_both_namings() -> None:
    assert everything_params(
        points_stride=16, conf_thres=0.8, crop_downscale_factor=2, box_nms_thresh=0.5
    ) == {
        "points_per_side": 16,
        "pred_iou_thresh": 0.8,
        "crop_n_points_downscale_factor": 2,
        "box_nms_thresh": 0.5,
    }
    assert ULTRALYTICS_ARGS["points_batch_size"] == "points_per_batch"
    with pytest.raises(SamkitError, match="did you mean 'points_stride'"):
        everything_params(points_strid=8)
    with pytest.raises(SamkitError, match="same parameter"):
        everything_params(points_stride=8, points_per_side=16)


@pytest.mark.parametrize(
    ("kwargs", "match_text"),
    [
        ({"output_mode": "png"}, "output_mode"),
        ({"points_per_side": None}, "exactly one"),
        ({"points_per_side": 8, "point_grids": [np.zeros((1, 2))]}, "exactly one"),
        ({"points_per_side": None, "point_grids": [np.zeros((3, 3))]}, r"point_grids\[0\]"),
        ({"points_per_side": 0}, "points_per_side"),
        ({"crop_n_layers": -1}, "crop_n_layers"),
        ({"points_per_batch": 0}, "points_per_batch"),
        ({"stability_score_thresh": 5}, r"stability_score_thresh must be a number in \[0, 1\]"),
        ({"points_per_side": True}, "points_per_side must be an int >= 1, got True"),
        ({"crop_overlap_ratio": 2}, r"crop_overlap_ratio must be a number in \[0, 1\)"),
        ({"min_mask_region_area": -5}, "min_mask_region_area must be an int >= 0"),
        ({"pred_iou_thresh": float("nan")}, "pred_iou_thresh must be a number in"),
        ({"box_nms_thresh": 0}, r"box_nms_thresh must be a number in \(0, 1\]"),
    ],
)
def test_generator_rejects_bad_parameters(models, kwargs, match_text) -> None:
    with pytest.raises(SamkitError, match=match_text):
        SamAutomaticMaskGenerator(models[1], **kwargs)


def test_generator_rejects_bad_image(models) -> None:
    gen = SamAutomaticMaskGenerator(models[1], points_per_side=2)
    with pytest.raises(SamkitError, match="uint8"):
        gen.generate(np.zeros((10, 10, 3), dtype=np.float32))


def test_front_without_prompts_runs_the_generator(models, image, tmp_path) -> None:
    """``SAM(model)(source)`` with no prompt = this generator (Ultralytics names accepted);
    Results carry per-mask scores and write COCO RLE that decodes to the same masks."""
    import cv2

    from samkit.model import SAM

    _, ours = models
    path = tmp_path / "scene.png"
    cv2.imwrite(str(path), image[:, :, ::-1])
    expected = SamAutomaticMaskGenerator(ours, points_per_side=4, pred_iou_thresh=0.9).generate(
        image
    )
    result = SAM(ours, device="cpu")(str(path), points_stride=4, conf_thres=0.9)[0]
    assert len(expected) >= 5 and len(result) == len(expected)
    order = np.argsort([-r["predicted_iou"] for r in expected], kind="stable")
    got = np.argsort(-result.scores, kind="stable")
    for i, j in zip(order, got, strict=True):
        assert np.array_equal(result.mask(j), expected[i]["segmentation"])
        assert result.scores[j] == pytest.approx(expected[i]["predicted_iou"])
        assert result.stability_scores[j] == pytest.approx(expected[i]["stability_score"])
    for rec, mask in zip(result.coco_records(), result.iter_masks(), strict=True):
        assert isinstance(rec["segmentation"]["counts"], str)
        assert np.array_equal(rle_to_mask(rec["segmentation"]), mask)
