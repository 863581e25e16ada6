"""Segment everything from exported files: the generator over an OnnxPredictor (NumPy decode,
upsampling and NMS) against the torch generator on the same blob weights (tests/amg_weights.py),
through the SAM front, and in a subprocess where torch cannot be imported."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from amg_weights import blob_weights
from reference import make_image, randomize, reference_vit
from samkit.amg.nms import batched_nms, batched_nms_numpy
from samkit.automatic import SamAutomaticMaskGenerator
from samkit.build import build_from_config
from samkit.errors import SamkitError
from samkit.export import export
from samkit.registry import SamConfig, ViTConfig

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

# The blob model's encoder output is its position embedding, so the smallest ViT will do.
TINY_VIT = ViTConfig(embed_dim=64, depth=1, num_heads=2, global_attn_indexes=())
IMAGE_HW = (240, 320)
MIN_MASKS = 20


@pytest.fixture(scope="module")
def blob_export(tmp_path_factory: pytest.TempPathFactory) -> tuple[torch.nn.Module, Path]:
    state = blob_weights(randomize(reference_vit(TINY_VIT), 0))
    model = build_from_config(SamConfig(encoder=TINY_VIT))
    model.load_state_dict(state)
    model.eval()
    folder = tmp_path_factory.mktemp("amg_onnx") / "blob_onnx"
    export(model, format="onnx", output=folder, name="blob")
    return model, folder


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    return make_image(*IMAGE_HW, seed=1)


@pytest.fixture(scope="module")
def torch_records(blob_export, image) -> list[dict]:
    """The torch generator's masks at ``points_per_side=6`` (shared by three tests)."""
    return SamAutomaticMaskGenerator(blob_export[0], points_per_side=6).generate(image)


def assert_same_masks(ours: list[dict], ref: list[dict]) -> None:
    """Same count; each torch mask's best ONNX match (same prompt and crop) has IoU >= 0.99
    and scores within 1e-3."""
    assert len(ref) >= MIN_MASKS, f"torch drew only {len(ref)} masks: the test would be weak"
    assert len(ours) == len(ref)
    a = np.stack([r["segmentation"] for r in ref]).reshape(len(ref), -1).astype(np.float32)
    b = np.stack([o["segmentation"] for o in ours]).reshape(len(ours), -1).astype(np.float32)
    inter = a @ b.T
    iou = inter / (a.sum(1)[:, None] + b.sum(1)[None] - inter)
    worst_iou, d_pred, d_stab = 1.0, 0.0, 0.0
    used: set[int] = set()
    for i, r in enumerate(ref):
        same = [
            j
            for j, o in enumerate(ours)
            if j not in used
            and np.allclose(o["point_coords"], r["point_coords"])
            and o["crop_box"] == r["crop_box"]
        ]
        assert same, f"no ONNX mask from prompt {r['point_coords']} in crop {r['crop_box']}"
        j = max(same, key=lambda k: iou[i, k])
        used.add(j)
        worst_iou = min(worst_iou, float(iou[i, j]))
        d_pred = max(d_pred, abs(r["predicted_iou"] - ours[j]["predicted_iou"]))
        d_stab = max(d_stab, abs(r["stability_score"] - ours[j]["stability_score"]))
    print(
        f"masks {len(ref)}: min matched IoU {worst_iou:.5f}, max |d predicted_iou| {d_pred:.2e}, "
        f"max |d stability| {d_stab:.2e}"
    )
    assert worst_iou >= 0.99
    assert d_pred <= 1e-3 and d_stab <= 1e-3


@pytest.mark.parametrize(
    "params",
    [
        {"points_per_side": 6},
        pytest.param(
            {"points_per_side": 4, "crop_n_layers": 1, "crop_n_points_downscale_factor": 2},
            marks=pytest.mark.slow,
        ),
    ],
    ids=["default", "crop_layers"],
)
def test_onnx_generator_matches_torch(blob_export, image, torch_records, params) -> None:
    from samkit.backends.onnxruntime import OnnxPredictor

    model, folder = blob_export
    ref = (
        torch_records
        if params == {"points_per_side": 6}
        else SamAutomaticMaskGenerator(model, **params).generate(image)
    )
    predictor = OnnxPredictor(folder)
    gen = SamAutomaticMaskGenerator(predictor, **params)
    assert gen.engine.backend == "onnxruntime"
    ours = gen.generate(image)
    assert_same_masks(ours, ref)
    assert not predictor.is_image_set  # the generator leaves the predictor as it found it


def test_front_segments_everything_from_onnx_folder(blob_export, image, torch_records) -> None:
    """``SAM(onnx_folder)(image)`` with no prompt runs the ONNX generator and keeps the image
    the front had set."""
    from samkit.model import SAM

    folder, ref = blob_export[1], torch_records
    front = SAM(folder)
    front.engine.set_image(image[:100, :100])
    before = front.engine.get_state().features.copy()
    res = front(image, points_per_side=6)[0]
    assert len(res) == len(ref) >= MIN_MASKS
    ref_area = sorted(int(r["area"]) for r in ref)
    got_area = sorted(int(m.sum()) for m in np.asarray(res.masks))
    assert np.allclose(got_area, ref_area, rtol=0.01, atol=2)
    assert np.array_equal(front.engine.get_state().features, before)


def test_onnx_generator_rejects_torch_only_options(blob_export) -> None:
    from samkit.backends.onnxruntime import OnnxPredictor

    predictor = OnnxPredictor(blob_export[1])
    with pytest.raises(SamkitError, match="low_res_filter"):
        SamAutomaticMaskGenerator(predictor, low_res_filter=True)
    with pytest.raises(SamkitError, match="model must be"):
        SamAutomaticMaskGenerator("not a model")  # type: ignore[arg-type]


def test_onnx_fast_mode_equals_torch_fast_mode(blob_export, image) -> None:
    """fast=True (hierarchical sampling) runs on ONNX Runtime too and decodes the same points
    as on torch, with the same masks."""
    from samkit.backends.onnxruntime import OnnxPredictor

    torch_gen = SamAutomaticMaskGenerator(blob_export[0], points_per_side=6, fast=True)
    onnx_gen = SamAutomaticMaskGenerator(
        OnnxPredictor(blob_export[1]), points_per_side=6, fast=True
    )
    ref, ours = torch_gen.generate(image), onnx_gen.generate(image)
    assert torch_gen.stats.skipped > 0
    assert onnx_gen.stats.as_dict() == torch_gen.stats.as_dict()
    assert np.array_equal(np.sort(onnx_gen.skipped_points, 0), np.sort(torch_gen.skipped_points, 0))
    assert len(ours) == len(ref) > 0
    a = np.stack([r["segmentation"] for r in ref]).reshape(len(ref), -1).astype(np.float32)
    b = np.stack([r["segmentation"] for r in ours]).reshape(len(ours), -1).astype(np.float32)
    inter = a @ b.T
    iou = inter / (a.sum(1)[:, None] + b.sum(1)[None] - inter)
    assert iou.max(1).min() >= 0.99


@pytest.mark.parametrize("thresh", [0.0, 0.3, 0.7])
def test_numpy_nms_equals_torch_nms(thresh: float) -> None:
    rng = np.random.default_rng(3)
    xy = rng.integers(0, 50, (300, 2))
    boxes = np.concatenate([xy, xy + rng.integers(1, 30, (300, 2))], axis=1)
    scores = rng.integers(0, 20, 300).astype(np.float32)  # many ties: order must be stable
    cats = rng.integers(0, 3, 300)
    for idxs in (None, cats):
        got = batched_nms_numpy(boxes, scores, idxs, thresh)
        t_idx = torch.zeros(300, dtype=torch.int64) if idxs is None else torch.from_numpy(idxs)
        want = batched_nms(torch.from_numpy(boxes), torch.from_numpy(scores), t_idx, thresh)
        assert 0 < len(got) < 300
        assert np.array_equal(got, want.numpy())


TORCH_BLOCKED = r"""
import importlib.abc, json, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith(("torch.", "torchvision")):
            raise ImportError(f"{name} is blocked in this test")
sys.meta_path.insert(0, Block())
import numpy as np
from samkit.backends.onnxruntime import OnnxPredictor
from samkit.amg import SamAutomaticMaskGenerator
folder, image_path, out_path = sys.argv[1:4]
records = SamAutomaticMaskGenerator(OnnxPredictor(folder), points_per_side=6).generate(
    np.load(image_path)
)
assert not any(m == "torch" or m.startswith("torch.") for m in sys.modules if sys.modules[m] is not None)
np.savez(out_path, masks=np.stack([r["segmentation"] for r in records]),
         meta=json.dumps([{k: v for k, v in r.items() if k != "segmentation"} for r in records]))
print("ok")
"""


def test_onnx_generator_without_torch(blob_export, image, torch_records, tmp_path: Path) -> None:
    """The whole generator in a subprocess where importing torch fails; same masks as torch."""
    import json

    folder = blob_export[1]
    np.save(tmp_path / "image.npy", image)
    out = tmp_path / "out.npz"
    proc = subprocess.run(
        [sys.executable, "-c", TORCH_BLOCKED, str(folder), str(tmp_path / "image.npy"), str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "ok" in proc.stdout
    got = np.load(out)
    ours = [
        {**meta, "segmentation": mask}
        for meta, mask in zip(json.loads(str(got["meta"])), got["masks"], strict=True)
    ]
    assert_same_masks(ours, torch_records)


def test_onnx_generator_from_detector_boxes(blob_export, image) -> None:
    """``prompts_from`` on ONNX Runtime: the same box prompts as torch, the same masks."""
    from samkit.backends.onnxruntime import OnnxPredictor

    boxes = np.array([[20, 20, 70, 70], [200, 30, 260, 90], [40, 150, 110, 220]], dtype=float)
    kw = {"prompts_from": lambda rgb: boxes, "pred_iou_thresh": 0.0}
    ref = SamAutomaticMaskGenerator(blob_export[0], **kw).generate(image)
    gen = SamAutomaticMaskGenerator(OnnxPredictor(blob_export[1]), **kw)
    ours = gen.generate(image)
    assert gen.stats.mode == "boxes" and len(ours) == len(ref) == len(boxes)
    for r in ref:
        (o,) = [o for o in ours if np.allclose(o["point_coords"], r["point_coords"])]
        a, b = r["segmentation"], o["segmentation"]
        iou = (a & b).sum() / (a | b).sum()
        print(f"box at {r['point_coords']}: mask IoU {iou:.5f}")
        assert iou >= 0.99 and abs(r["predicted_iou"] - o["predicted_iou"]) <= 1e-3
