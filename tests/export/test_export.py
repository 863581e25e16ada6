"""ONNX export: files, metadata, the decoder contract, parity with Meta's SamOnnxModel, and the
ONNX Runtime backend against the torch engine (also with torch made unimportable).

Models: a reduced ViT (SMALL_VIT), a reduced TinyViT and full-size MobileSAM, each on seeded
random weights; every model is exported once per session. Tolerances: embeddings and logits
max|diff| <= 1e-3 * max|torch|; final masks equal on >= 99.99% of pixels.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import samkit
from reference import SMALL_VIT, randomize, reference_mobile_sam, reference_vit
from samkit.build import build_from_config, load_weights
from samkit.errors import SamkitError
from samkit.export import export
from samkit.export.graphs import DecoderGraph
from samkit.export.onnx import (
    DECODER_INPUTS,
    DECODER_OUTPUTS,
    check_decoder,
    export_decoder,
    export_encoder,
)
from samkit.registry import VARIANTS, SamConfig, TinyViTConfig

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

SMALL_TINY = SamConfig(
    encoder=TinyViTConfig(
        embed_dims=(32, 64, 80, 160), depths=(1, 1, 2, 1), num_heads=(1, 2, 5, 10)
    )
)
ORIG_SIZES = [(427, 640), (700, 466), (1024, 1024), (97, 1500)]


@dataclass
class Exported:
    name: str
    model: samkit.Sam
    folder: Path
    reference: torch.nn.Module | None  # Meta's / MobileSAM's Sam with the same weights


def _build(kind: str) -> tuple[samkit.Sam, torch.nn.Module | None]:
    if kind == "vit_small":
        ref = reference_vit(SMALL_VIT)
        state = randomize(ref, seed=11)
        ours = build_from_config(SamConfig(encoder=SMALL_VIT))
    elif kind == "mobile_sam":
        ref = reference_mobile_sam()
        state = randomize(ref, seed=12)
        ref.eval()  # MobileSAM caches its attention bias on eval()
        ours = build_from_config(VARIANTS["mobile_sam"].config)
    else:
        ours = build_from_config(SMALL_TINY)
        randomize(ours, seed=13)
        return ours.eval(), None
    load_weights(ours, state)
    return ours.eval(), ref


# The full-size MobileSAM export is slow: its cases leave the default set; the ONNX Runtime vs
# torch comparison still runs in CI ("ci").
FULL = pytest.param("mobile_sam", marks=pytest.mark.slow)
SMALL_KINDS = ["vit_small", "tiny_vit_small"]


@pytest.fixture(scope="session")
def exports(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Exported]:
    """Each model is built and exported once per session, on first use."""
    cache: dict[str, Exported] = {}

    def get(kind: str) -> Exported:
        if kind not in cache:
            model, ref = _build(kind)
            folder = tmp_path_factory.mktemp(kind) / f"{kind}_onnx"
            files = export(model, format="onnx", output=folder, name=kind)
            assert {p.name for p in files} == {"encoder.onnx", "decoder.onnx", "samkit_onnx.json"}
            cache[kind] = Exported(kind, model, folder, ref)
        return cache[kind]

    return get


@pytest.fixture(params=[*SMALL_KINDS, FULL])
def exported(request: pytest.FixtureRequest, exports: Callable[[str], Exported]) -> Exported:
    return exports(request.param)


@pytest.fixture
def vit_small(exports: Callable[[str], Exported]) -> Exported:
    return exports("vit_small")


@pytest.fixture
def tiny_small(exports: Callable[[str], Exported]) -> Exported:
    return exports("tiny_vit_small")


def _rel_check(what: str, ours: np.ndarray, ref: np.ndarray, rtol: float = 1e-3) -> None:
    assert ours.shape == ref.shape, f"{what}: shape {ours.shape} vs {ref.shape}"
    err = float(np.abs(ours.astype(np.float64) - ref).max())
    scale = float(np.abs(ref).max())
    print(f"  {what}: max|diff| {err:.3e}  max|ref| {scale:.3e}  ratio {err / scale:.2e}")
    assert err <= rtol * scale, f"{what}: {err} > {rtol} * {scale}"


def _mask_check(what: str, ours: np.ndarray, ref: np.ndarray, require_mixed: bool = True) -> None:
    assert ours.shape == ref.shape and ours.dtype == ref.dtype == np.bool_
    frac = float((ours != ref).mean())
    print(f"  {what}: {frac:.2e} of pixels differ ({ref.mean():.3f} foreground)")
    assert frac <= 1e-4
    if require_mixed:
        assert 0.0 < ref.mean() < 1.0, f"{what}: degenerate case, masks are all one value"


def _feeds(
    points: list[tuple[float, float, float]],
    orig: tuple[int, int],
    embedding: np.ndarray,
    mask: np.ndarray | None = None,
    batch: int = 1,
) -> dict[str, np.ndarray]:
    pts = np.asarray(points, dtype=np.float32)
    return {
        "image_embeddings": embedding,
        "point_coords": np.repeat(pts[None, :, :2], batch, axis=0),
        "point_labels": np.repeat(pts[None, :, 2], batch, axis=0),
        "mask_input": np.zeros((batch, 1, 256, 256), np.float32) if mask is None else mask,
        "has_mask_input": np.array([0.0 if mask is None else 1.0], np.float32),
        "orig_im_size": np.array(orig, np.float32),
    }


def _embedding(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 0.5, (1, 256, 64, 64)).astype(np.float32)


PROMPTS: dict[str, list[tuple[float, float, float]]] = {
    "point": [(410.0, 300.0, 1.0), (0.0, 0.0, -1.0)],
    "pos_neg": [(410.0, 300.0, 1.0), (650.0, 520.0, 0.0), (0.0, 0.0, -1.0)],
    "box": [(120.0, 200.0, 2.0), (800.0, 640.0, 3.0)],
    "box_point": [(500.0, 380.0, 1.0), (120.0, 200.0, 2.0), (800.0, 640.0, 3.0)],
}


# ----------------------------------------------------------------------------- exporter
def test_files_manifest_and_metadata(exported: Exported) -> None:
    manifest = json.loads((exported.folder / "samkit_onnx.json").read_text())
    assert manifest["model"] == exported.name
    assert manifest["image_size"] == 1024
    assert manifest["checks"]["encoder_max_rel_diff"] < 1e-3
    assert manifest["checks"]["decoder_max_rel_diff"] < 1e-3
    for role in ("encoder", "decoder"):
        proto = onnx.load(str(exported.folder / f"{role}.onnx"), load_external_data=False)
        props = {p.key: p.value for p in proto.metadata_props}
        assert props["model_name"] == exported.name
        assert props["samkit_role"] == role
        assert props["input_size"] == "1024"
        assert json.loads(props["pixel_mean"]) == pytest.approx([123.675, 116.28, 103.53])
        assert json.loads(props["pixel_std"]) == pytest.approx([58.395, 57.12, 57.375])
    session = ort.InferenceSession(
        str(exported.folder / "decoder.onnx"), providers=["CPUExecutionProvider"]
    )
    assert [i.name for i in session.get_inputs()] == list(DECODER_INPUTS)
    assert [o.name for o in session.get_outputs()] == list(DECODER_OUTPUTS)
    shapes = {i.name: i.shape for i in session.get_inputs()}
    assert shapes["image_embeddings"] == [1, 256, 64, 64]
    assert shapes["point_coords"][2] == 2 and isinstance(shapes["point_coords"][1], str)
    assert shapes["mask_input"][1:] == [1, 256, 256] and shapes["has_mask_input"] == [1]
    assert shapes["orig_im_size"] == [2]


def _meta_onnx_model(exported: Exported, single: bool) -> torch.nn.Module:
    if exported.name == "mobile_sam":
        from mobile_sam.utils.onnx import SamOnnxModel
    else:
        from segment_anything.utils.onnx import SamOnnxModel
    return SamOnnxModel(exported.reference, return_single_mask=single).eval()


@pytest.mark.parametrize("kind", ["vit_small", FULL])
def test_decoder_matches_meta_sam_onnx_model(kind: str, exports: Callable[[str], Exported]) -> None:
    """Our exported decoder (in ONNX Runtime) vs Meta's SamOnnxModel in torch on the same
    weights: points, boxes, a mask prompt, and several original sizes through one file."""
    exported = exports(kind)
    meta = _meta_onnx_model(exported, single=False)
    session = ort.InferenceSession(
        str(exported.folder / "decoder.onnx"), providers=["CPUExecutionProvider"]
    )
    emb = _embedding(1)
    mask = np.random.default_rng(3).normal(0, 6, (1, 1, 256, 256)).astype(np.float32)
    cases = [
        (name, pts, orig, None)
        for (name, pts), orig in zip(PROMPTS.items(), ORIG_SIZES, strict=True)
    ]
    cases.append(("mask", PROMPTS["pos_neg"], (333, 1000), mask))
    for name, pts, orig, mask_in in cases:
        feeds = _feeds(pts, orig, emb, mask_in)
        print(f"[{exported.name} {name} {orig}]")
        with torch.no_grad():
            ref = [t.numpy() for t in meta(**{k: torch.from_numpy(v) for k, v in feeds.items()})]
        ours = session.run(None, feeds)
        assert ours[0].shape == (1, 4, *orig)
        _rel_check("masks (logits)", ours[0], ref[0])
        _rel_check("iou_predictions", ours[1], ref[1])
        _rel_check("low_res_masks", ours[2], ref[2])
        _mask_check("masks", ours[0] > 0, ref[0] > 0)


def test_single_mask_and_low_res_options(vit_small: Exported, tmp_path: Path) -> None:
    meta = _meta_onnx_model(vit_small, single=True)
    single = export_decoder(vit_small.model, tmp_path / "single.onnx", return_single_mask=True)[0]
    low = export_decoder(vit_small.model, tmp_path / "low.onnx", return_low_res=True)[0]
    s_single = ort.InferenceSession(str(single), providers=["CPUExecutionProvider"])
    s_low = ort.InferenceSession(str(low), providers=["CPUExecutionProvider"])
    s_full = ort.InferenceSession(
        str(vit_small.folder / "decoder.onnx"), providers=["CPUExecutionProvider"]
    )
    assert [i.name for i in s_low.get_inputs()] == list(DECODER_INPUTS)  # orig_im_size kept
    emb = _embedding(2)
    chosen = set()
    for name, pts in PROMPTS.items():
        feeds = _feeds(pts, (480, 640), emb)
        with torch.no_grad():
            ref = [t.numpy() for t in meta(**{k: torch.from_numpy(v) for k, v in feeds.items()})]
        masks, iou, _low_res = s_single.run(None, feeds)
        assert masks.shape == (1, 1, 480, 640) and iou.shape == (1, 1)
        _rel_check(f"{name} single iou", iou, ref[1])
        _mask_check(f"{name} single mask", masks > 0, ref[0] > 0)
        full_iou = s_full.run(["iou_predictions"], feeds)[0]
        chosen.add(int(np.argmin(np.abs(full_iou[0] - iou[0, 0]))))
        lr_masks, _lr_iou, lr_low = s_low.run(None, feeds)
        assert lr_masks.shape == (1, 4, 256, 256)
        np.testing.assert_array_equal(lr_masks, lr_low)
        _rel_check(f"{name} low-res", lr_low, s_full.run(["low_res_masks"], feeds)[0])
    assert 0 in chosen and chosen - {0}, "single-mask choice should use token 0 for 3+ points only"


def test_batched_prompts_and_empty_points(tiny_small: Exported) -> None:
    """Dynamic batch (B prompts sharing one embedding) and N = 0 points (mask prompt only)."""
    graph = DecoderGraph(tiny_small.model).eval()
    session = ort.InferenceSession(
        str(tiny_small.folder / "decoder.onnx"), providers=["CPUExecutionProvider"]
    )
    rng = np.random.default_rng(4)
    feeds = _feeds(PROMPTS["pos_neg"], (300, 500), _embedding(3), batch=3)
    feeds["point_coords"] = rng.uniform(0, 1000, (3, 3, 2)).astype(np.float32)
    feeds["mask_input"] = rng.normal(0, 4, (3, 1, 256, 256)).astype(np.float32)
    feeds["has_mask_input"][:] = 1.0
    empty = dict(
        feeds,
        point_coords=np.zeros((1, 0, 2), np.float32),
        point_labels=np.zeros((1, 0), np.float32),
    )
    empty["mask_input"] = feeds["mask_input"][:1]
    for name, f in (("batch of 3", feeds), ("no points", empty)):
        with torch.no_grad():
            ref = [t.numpy() for t in graph(*(torch.from_numpy(f[k]) for k in DECODER_INPUTS))]
        ours = session.run(None, f)
        for out_name, o, r in zip(DECODER_OUTPUTS, ours, ref, strict=True):
            _rel_check(f"{name} {out_name}", o, r)


def test_baked_preprocess_encoder(vit_small: Exported, tmp_path: Path) -> None:
    """The baked encoder takes the resized uint8 image; normalise + pad in-graph is exact."""
    from samkit import transforms

    baked = export_encoder(vit_small.model, tmp_path / "baked.onnx", bake_preprocess=True)[0]
    s_baked = ort.InferenceSession(str(baked), providers=["CPUExecutionProvider"])
    s_plain = ort.InferenceSession(
        str(vit_small.folder / "encoder.onnx"), providers=["CPUExecutionProvider"]
    )
    rng = np.random.default_rng(5)
    for h, w in ((683, 1024), (1024, 600)):
        image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        x = transforms.normalize_pad(
            image, 1024, (123.675, 116.28, 103.53), (58.395, 57.12, 57.375)
        )
        a = s_baked.run(None, {"image": image})[0]
        b = s_plain.run(None, {"image": x})[0]
        _rel_check(f"baked vs plain {h}x{w}", a, b, rtol=1e-5)


def test_large_model_external_data(tiny_small: Exported, tmp_path: Path) -> None:
    files = export_encoder(tiny_small.model, tmp_path / "encoder.onnx", external_data=True)
    assert [p.name for p in files] == ["encoder.onnx", "encoder.onnx.data"]
    assert files[0].stat().st_size < 1_000_000 < files[1].stat().st_size
    x = np.random.default_rng(6).normal(size=(1, 3, 1024, 1024)).astype(np.float32)
    a = ort.InferenceSession(str(files[0]), providers=["CPUExecutionProvider"]).run(
        None, {"image": x}
    )[0]
    b = ort.InferenceSession(
        str(tiny_small.folder / "encoder.onnx"), providers=["CPUExecutionProvider"]
    ).run(None, {"image": x})[0]
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-5)


def test_check_fails_beyond_tolerance(vit_small: Exported) -> None:
    """The ORT-vs-torch check raises when the file does not compute the given model."""
    other, _ = _build("tiny_vit_small")  # same decoder architecture, other weights
    with pytest.raises(SamkitError, match="differs from torch"):
        check_decoder(other, vit_small.folder / "decoder.onnx", log=lambda _: None)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (
            lambda m, p: export(m, format="coreml", output=p),
            "unknown export format 'coreml'; available: onnx",
        ),
        (lambda m, p: export(42, output=p), "model must be a checkpoint path"),
        (lambda m, p: export(m, output=p, opset=13), "opset must be an int >= 17"),
    ],
)
def test_export_rejects_bad_arguments(
    call: Callable[[Any, Path], Any], match: str, tmp_path: Path
) -> None:
    model = build_from_config(SamConfig(encoder=SMALL_VIT))
    with pytest.raises(SamkitError, match=match):
        call(model, tmp_path)


# ------------------------------------------------------------------------------ backend
IMAGE_SIZES = [(427, 640), (700, 466), (240, 1500)]


def _case_kwargs(h: int, w: int) -> dict[str, dict[str, Any]]:
    s = np.array([w, h])
    return {
        "point": {"point_coords": np.array([[0.45, 0.4]]) * s, "point_labels": np.array([1])},
        "pos_neg": {
            "point_coords": np.array([[0.45, 0.4], [0.2, 0.75]]) * s,
            "point_labels": np.array([1, 0]),
        },
        "box": {"box": np.array([0.1, 0.15, 0.7, 0.8]) * np.r_[s, s]},
        "box_point_single": {
            "box": np.array([0.1, 0.15, 0.7, 0.8]) * np.r_[s, s],
            "point_coords": np.array([[0.4, 0.5]]) * s,
            "point_labels": np.array([1]),
            "multimask_output": False,
        },
    }


@pytest.mark.parametrize("kind", [*SMALL_KINDS, pytest.param("mobile_sam", marks=pytest.mark.ci)])
def test_ort_predictor_matches_torch(kind: str, exports: Callable[[str], Exported]) -> None:
    """OnnxPredictor vs SamPredictor: embeddings, low-res logits, scores, full-size logits
    and masks, for point, box and mask-input prompts at several original sizes."""
    from reference import make_image
    from samkit.backends.onnxruntime import OnnxPredictor

    exp = exports(kind)
    torch_p = samkit.SamPredictor(exp.model)
    ort_p = OnnxPredictor(exp.folder)
    non_degenerate = 0
    for h, w in IMAGE_SIZES:
        image = make_image(h, w, seed=h)
        torch_p.set_image(image)
        ort_p.set_image(image)
        print(f"[{kind} {w}x{h}]")
        _rel_check("embedding", ort_p.get_image_embedding(), torch_p.features.numpy())
        assert ort_p.input_size == torch_p.input_size and ort_p.original_size == (h, w)
        for name, kwargs in _case_kwargs(h, w).items():
            m_t, s_t, l_t = torch_p.predict(**kwargs)
            m_o, s_o, l_o = ort_p.predict(**kwargs)
            _rel_check(f"{name} low-res", l_o, l_t)
            _rel_check(f"{name} iou", s_o, s_t)
            _mask_check(f"{name} masks", m_o, m_t, require_mixed=False)
            non_degenerate += int(0 < m_t.mean() < 1)
        refine = {**_case_kwargs(h, w)["point"], "mask_input": l_t[:1], "multimask_output": False}
        lt_full = torch_p.predict(**refine, return_logits=True)
        lo_full = ort_p.predict(**refine, return_logits=True)
        _rel_check("mask-input low-res", lo_full[2], lt_full[2])
        _rel_check("mask-input full-size logits", lo_full[0], lt_full[0])
        _mask_check("mask-input masks", lo_full[0] > 0, lt_full[0] > 0, require_mixed=False)
        non_degenerate += int(0 < (lt_full[0] > 0).mean() < 1)
    print(f"  {non_degenerate} non-degenerate mask cases")
    assert non_degenerate >= 10


def test_ort_batched_and_state_exchange(tiny_small: Exported) -> None:
    """predict_batch / decode_low_res / upscale against predict_torch, and a torch ImageState
    restored into the ORT predictor decodes like the torch one."""
    from reference import make_image
    from samkit import transforms
    from samkit.backends.onnxruntime import OnnxPredictor

    torch_p = samkit.SamPredictor(tiny_small.model)
    ort_p = OnnxPredictor(tiny_small.folder)
    image = make_image(500, 375, seed=9)
    torch_p.set_image(image)
    ort_p.set_image_state(torch_p.get_image_state())  # no ORT encoder pass
    boxes = np.array([[10, 20, 200, 300], [100, 50, 370, 480], [0, 0, 374, 499]], float)
    pts = np.array([[[100, 150]], [[200, 300]], [[50, 400]]], float)
    labels = np.ones((3, 1), int)
    m_o, s_o, l_o = ort_p.predict_batch(pts, labels, boxes, multimask_output=False)
    m_t, s_t, l_t = torch_p.predict_torch(
        torch.as_tensor(transforms.apply_coords(pts, (500, 375), 1024), dtype=torch.float),
        torch.as_tensor(labels, dtype=torch.int),
        torch.as_tensor(transforms.apply_boxes(boxes, (500, 375), 1024), dtype=torch.float),
        multimask_output=False,
    )
    assert m_o.shape == (3, 1, 500, 375)
    _rel_check("batch low-res", l_o, l_t.numpy())
    _rel_check("batch iou", s_o, s_t.numpy())
    _mask_check("batch masks", m_o, m_t.numpy(), require_mixed=False)
    up = ort_p.upscale(l_o)  # NumPy bilinear path (no graph)
    _mask_check("numpy upscale", up, m_t.numpy(), require_mixed=False)
    # the same prompt checks as the torch predictor: no NaN / inf / absurd numbers get through
    for bad, needle in (
        (np.array([np.nan, 0, 5, 5]), "NaN"),
        (np.array([0, 0, 5, 1e300]), "at most"),
    ):
        with pytest.raises(samkit.PromptError, match=needle):
            ort_p.predict(box=bad)
        with pytest.raises(samkit.PromptError, match=needle):
            ort_p.predict_batch(boxes=bad[None])


def test_sam_front_export_and_onnx_folder(vit_small: Exported, tmp_path: Path) -> None:
    """SAM(ckpt).export(format="onnx") writes a folder; SAM(folder) gives the torch results."""
    from reference import make_image
    from samkit.model import SAM

    ckpt = tmp_path / "my_small_sam.pth"
    torch.save(vit_small.model.state_dict(), ckpt)
    torch_sam = SAM(ckpt, device="cpu")
    files = torch_sam.export(format="onnx", output=tmp_path / "out", check=False)
    assert {p.name for p in files} == {"encoder.onnx", "decoder.onnx", "samkit_onnx.json"}
    assert (
        json.loads((tmp_path / "out" / "samkit_onnx.json").read_text())["model"] == "my_small_sam"
    )
    ort_sam = SAM(tmp_path / "out")
    assert type(ort_sam.engine).__name__ == "OnnxEngine"
    image = make_image(360, 480, seed=4)
    prompts = {
        "points": [[[100, 120]], [[300, 200]]],
        "labels": [[1], [1]],
        "multimask_output": True,
    }
    a = torch_sam.predict(image, **prompts)[0]
    b = ort_sam.predict(image, **prompts)[0]
    _rel_check("front scores", np.asarray(b.scores), np.asarray(a.scores))
    _mask_check("front masks", np.asarray(b.masks), np.asarray(a.masks), require_mixed=False)
    with pytest.raises(SamkitError, match="needs the torch network"):
        ort_sam.export()


def test_cli_export_mode(tiny_small: Exported, tmp_path: Path) -> None:
    from samkit.cli import main

    ckpt = tmp_path / "tiny.pt"
    torch.save(tiny_small.model.state_dict(), ckpt)
    out = tmp_path / "cli_out"
    code = main(
        ["export", f"model={ckpt}", "format=onnx", f"output={out}", "return_single_mask=true"]
    )
    assert code == 0
    manifest = json.loads((out / "samkit_onnx.json").read_text())
    assert manifest["decoder"]["return_single_mask"] is True
    assert manifest["checks"]["decoder_max_rel_diff"] < 1e-3


TORCH_BLOCKED = r"""
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith(("torch.", "torchvision")):
            raise ImportError(f"{name} is blocked in this test")
sys.meta_path.insert(0, Block())
import numpy as np
try:
    import torch  # noqa: F401
    raise SystemExit("torch should not be importable here")
except ImportError:
    pass
import samkit
from samkit.backends.onnxruntime import OnnxPredictor
from samkit.model import SAM
folder, image_path, out_path = sys.argv[1:4]
image = np.load(image_path)
p = OnnxPredictor(folder)
p.set_image(image)
point = p.predict(point_coords=np.array([[200.0, 150.0]]), point_labels=np.array([1]))
box = p.predict(box=np.array([40.0, 60.0, 330.0, 260.0]), multimask_output=False)
front = SAM(folder).predict(image, bboxes=[40, 60, 330, 260])[0]
assert not any(m == "torch" or m.startswith("torch.") for m in sys.modules if sys.modules[m] is not None)
np.savez(out_path, embedding=p.get_image_embedding(), point_masks=point[0], point_scores=point[1],
         point_low=point[2], box_masks=box[0], front_masks=np.asarray(front.masks))
print("ok", samkit.__version__)
"""


@pytest.mark.slow  # full-size MobileSAM; test_automatic_onnx checks the torch-free path by default
def test_ort_backend_without_torch(exports: Callable[[str], Exported], tmp_path: Path) -> None:
    """The ONNX Runtime backend (predictor and SAM front) in a subprocess where importing torch
    fails; results equal the torch path's."""
    import subprocess
    import sys

    from reference import make_image

    exp = exports("mobile_sam")
    image = make_image(300, 400, seed=21)
    np.save(tmp_path / "image.npy", image)
    out = tmp_path / "out.npz"
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            TORCH_BLOCKED,
            str(exp.folder),
            str(tmp_path / "image.npy"),
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "ok" in proc.stdout
    got = np.load(out)
    torch_p = samkit.SamPredictor(exp.model)
    torch_p.set_image(image)
    _rel_check("embedding", got["embedding"], torch_p.features.numpy())
    m, s, low = torch_p.predict(point_coords=np.array([[200.0, 150.0]]), point_labels=np.array([1]))
    _rel_check("point low-res", got["point_low"], low)
    _rel_check("point iou", got["point_scores"], s)
    _mask_check("point masks", got["point_masks"], m, require_mixed=False)
    mb = torch_p.predict(box=np.array([40.0, 60.0, 330.0, 260.0]), multimask_output=False)[0]
    _mask_check("box mask", got["box_masks"], mb, require_mixed=False)
    from samkit.model import SAM

    front = SAM(exp.model, device="cpu").predict(image, bboxes=[40, 60, 330, 260])[0]
    _mask_check("front box mask", got["front_masks"], np.asarray(front.masks), require_mixed=False)


def test_int8_quantisation(tiny_small: Exported, tmp_path: Path) -> None:
    """int8 copies are smaller, load through precision=, and agree with fp32 masks."""
    import shutil

    from reference import make_image
    from samkit.backends.onnxruntime import OnnxPredictor
    from samkit.export.quantize import quantize_folder

    folder = tmp_path / "q"
    shutil.copytree(tiny_small.folder, folder)
    with pytest.raises(SamkitError, match="no int8 decoder"):
        OnnxPredictor(folder, precision="int8_decoder")
    files = quantize_folder(folder, log=print)
    assert files["decoder"].stat().st_size < 0.5 * (folder / "decoder.onnx").stat().st_size
    image = make_image(400, 300, seed=8)
    kwargs = {"box": np.array([30, 40, 250, 330]), "multimask_output": True}
    fp32 = OnnxPredictor(folder)
    fp32.set_image(image)
    ref = fp32.predict(**kwargs)[0]
    for precision in ("int8_decoder", "int8"):
        p = OnnxPredictor(folder, precision=precision)
        p.set_image(image)
        masks = p.predict(**kwargs)[0]
        inter = (masks & ref).sum(axis=(1, 2))
        union = np.maximum((masks | ref).sum(axis=(1, 2)), 1)
        miou = float((inter / union).mean())
        print(f"  {precision}: mean IoU vs fp32 {miou:.4f}")
        assert miou > 0.8
