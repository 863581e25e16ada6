"""Segment-everything Results hold RLEs: the dense (N, H, W) stack is never built by the front,
the CLI, plotting or the writers, and everything they produce equals the dense path.

Uses the deterministic blob weights (tests/amg_weights.py) so the generator returns real masks.
"""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from amg_weights import blob_weights
from reference import make_image, randomize, reference_vit, save_checkpoint
from samkit.automatic import SamAutomaticMaskGenerator
from samkit.build import build_from_config
from samkit.errors import SamkitError
from samkit.masks import box_xyxy_to_xywh, mask_to_box, mask_to_rle
from samkit.model import SAM
from samkit.registry import SamConfig, ViTConfig
from samkit.results import Results

TINY_VIT = ViTConfig(embed_dim=64, depth=1, num_heads=2, global_attn_indexes=())
H, W = 1500, 2000  # big enough that a dense stack is obvious in tracemalloc
SETTINGS = {"points_per_side": 6, "crop_n_layers": 1, "crop_n_points_downscale_factor": 2}
MIN_MASKS = 20


@pytest.fixture(scope="module")
def state() -> dict[str, torch.Tensor]:
    return blob_weights(randomize(reference_vit(TINY_VIT), 0))


@pytest.fixture(scope="module")
def net(state):
    model = build_from_config(SamConfig(encoder=TINY_VIT))
    model.load_state_dict(state)
    return model.eval()


@pytest.fixture(scope="module")
def image_rgb() -> np.ndarray:
    return make_image(H, W, seed=3)


class DenseBuilt(AssertionError):
    pass


@pytest.fixture
def no_dense(monkeypatch):
    """Any decoding of a whole (N, H, W) stack fails the test."""

    def forbid(self: Results) -> np.ndarray:
        raise DenseBuilt(f"dense masks built for {self!r}")

    monkeypatch.setattr(Results, "_materialize", forbid)


@pytest.fixture(scope="module")
def lazy(net, image_rgb) -> Results:
    results = SAM(net, device="cpu")(np.ascontiguousarray(image_rgb[:, :, ::-1]), **SETTINGS)
    assert isinstance(results, list) and len(results) == 1
    return results[0]


@pytest.fixture(scope="module")
def reference_records(net, image_rgb) -> list[dict]:
    """The generator's own dense output (binary masks) for the same settings."""
    gen = SamAutomaticMaskGenerator(net, output_mode="binary_mask", **SETTINGS)
    return gen.generate(image_rgb)


def test_front_and_writers_never_build_the_stack(lazy, no_dense, tmp_path) -> None:
    n = len(lazy)
    print(f"segment everything: {n} masks on {W}x{H}")
    assert n >= MIN_MASKS, f"only {n} masks: the test would be weak"
    assert lazy.rles is not None and not lazy.is_dense
    dense_bytes = n * H * W
    tracemalloc.start()
    try:
        lazy.save(tmp_path / "overlay.jpg")
        lazy.save_txt(tmp_path / "labels.txt")
        text = lazy.to_json()
        records = lazy.coco_records(image_id=7)
        boxes, areas, xyn = lazy.boxes, lazy.areas, lazy.xyn
        view = lazy.masks  # Ultralytics-style view: lazy too
        view_facts = (len(view), view.shape, len(view[1:3]), len(view.xy), view.orig_shape)
        xyxy = lazy.boxes.xyxy
        holes = lazy.polygons_with_holes()
        parts = list(lazy)
        sub = lazy[[0, 2]]
        sub.plot()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    print(f"peak traced {peak / 2**20:.1f} MiB, dense stack would be {dense_bytes / 2**20:.1f} MiB")
    assert peak < dense_bytes / 2
    assert not lazy.is_dense and not sub.is_dense
    assert len(parts) == n and all(len(p) == 1 and p.rles is not None for p in parts)
    assert boxes.shape == (n, 6) and areas.shape == (n,) and len(xyn) == len(holes) == n
    assert view_facts == (n, (n, H, W), 2, n, (H, W)) and tuple(xyxy.shape) == (n, 4)
    assert len(records) == n and len(json.loads(text)["objects"]) == n
    assert records[0]["image_id"] == 7 and isinstance(records[0]["segmentation"]["counts"], str)
    assert cv2.imread(str(tmp_path / "overlay.jpg")).shape == (H, W, 3)
    lines = (tmp_path / "labels.txt").read_text().splitlines()
    assert len(lines) >= n
    with pytest.raises(DenseBuilt):
        _ = lazy.masks.data  # the ways in, documented as costing N * H * W bytes
    with pytest.raises(DenseBuilt):
        np.asarray(lazy.masks)


def test_cli_everything_never_builds_the_stack(state, image_rgb, no_dense, tmp_path) -> None:
    from samkit.cli import main

    ckpt = save_checkpoint(state, tmp_path / "blob.pt")
    img = tmp_path / "big.png"
    cv2.imwrite(str(img), image_rgb[:, :, ::-1])
    settings = [f"{k}={v}" for k, v in SETTINGS.items()]
    run_args = [f"model={ckpt}", f"source={img}", f"project={tmp_path / 'runs'}", "device=cpu"]
    code = main(["predict", *run_args, "save=True", "save_txt=True", "save_json=True", *settings])
    assert code == 0
    run = tmp_path / "runs" / "predict"
    summary = json.loads((run / "predictions.json").read_text())
    assert summary["counts"]["masks"] >= MIN_MASKS
    assert (run / "big.jpg").is_file() and (run / "labels" / "big.txt").is_file()


@pytest.mark.slow
def test_equal_to_dense_path(lazy, reference_records) -> None:
    n = len(lazy)
    assert n == len(reference_records) >= MIN_MASKS
    masks = np.stack([r["segmentation"] for r in reference_records])
    scores = np.array([r["predicted_iou"] for r in reference_records], dtype=np.float32)
    stab = np.array([r["stability_score"] for r in reference_records], dtype=np.float32)
    dense = Results(
        lazy.image, mask_array=masks, scores=scores, stability_scores=stab, path=lazy.path
    )
    np.testing.assert_array_equal(lazy.scores, dense.scores)
    np.testing.assert_array_equal(lazy.stability_scores, dense.stability_scores)
    np.testing.assert_array_equal(lazy.boxes, dense.boxes)
    np.testing.assert_array_equal(lazy.boxes, mask_to_box(masks))
    bbox = np.array([r["bbox"] for r in reference_records])
    np.testing.assert_array_equal(box_xyxy_to_xywh(lazy.boxes), bbox)  # record bbox, XYWH
    np.testing.assert_array_equal(lazy.areas, [r["area"] for r in reference_records])
    assert lazy.coco_records() == dense.coco_records()
    assert lazy.yolo_lines() == dense.yolo_lines()
    for a, b in zip(lazy.xy, dense.xy, strict=True):
        assert len(a) == len(b) and all(np.array_equal(p, q) for p, q in zip(a, b, strict=True))
    np.testing.assert_array_equal(lazy.plot(), dense.plot())
    np.testing.assert_array_equal(lazy.plot(boxes=False), dense.plot(boxes=False))
    sub = lazy[1::3]
    assert sub.coco_records() == dense[1::3].coco_records()
    np.testing.assert_array_equal(lazy.mask(4), masks[4])
    # Accessing .masks decodes the same stack (on a copy, so the module fixture stays lazy).
    copy = lazy[np.arange(n)]
    assert not copy.is_dense
    np.testing.assert_array_equal(copy.masks, masks)
    assert copy.is_dense and copy.masks is copy.masks and copy.masks.data is copy.masks.data


def test_rle_box_edge_cases() -> None:
    rng = np.random.default_rng(0)
    cases = [np.zeros((7, 5), bool), np.ones((7, 5), bool)]
    for _ in range(200):
        m = np.zeros((7, 5), bool)
        k = int(rng.integers(1, 6))
        m[rng.integers(0, 7, k), rng.integers(0, 5, k)] = True
        cases.append(m)
    stack = np.stack(cases)
    img = np.zeros((7, 5, 3), np.uint8)
    from_rle = Results(img, rles=[mask_to_rle(m) for m in stack], scores=np.zeros(len(stack)))
    np.testing.assert_array_equal(from_rle.boxes, mask_to_box(stack))
    np.testing.assert_array_equal(from_rle.areas, stack.reshape(len(stack), -1).sum(1))


def test_constructor_checks() -> None:
    img = np.zeros((4, 3, 3), np.uint8)
    rle = mask_to_rle(np.ones((4, 3), bool))
    with pytest.raises(SamkitError, match="exactly one"):
        Results(img, scores=np.zeros(0))
    with pytest.raises(SamkitError, match="exactly one"):
        Results(img, mask_array=np.zeros((1, 4, 3), bool), rles=[rle], scores=np.zeros(1))
    with pytest.raises(SamkitError, match="size"):
        Results(img, rles=[mask_to_rle(np.ones((3, 4), bool))], scores=np.zeros(1))
    with pytest.raises(SamkitError, match="summing"):
        Results(img, rles=[{"size": [4, 3], "counts": [5]}], scores=np.zeros(1))
    r = Results(img, rles=[rle], scores=np.zeros(1))
    with pytest.raises(AttributeError):  # frozen
        r.scores = np.ones(1)  # type: ignore[misc]
    with pytest.raises(SamkitError, match=r"\(H, W, 3\) uint8"):
        Results(img[..., 0], rles=[rle], scores=np.zeros(1))
    with pytest.raises(SamkitError, match="cls"):
        Results(img, rles=[rle], scores=np.zeros(1), cls=np.zeros(2))
    assert Path(str(r.path)).name == "" and r.is_dense is False
