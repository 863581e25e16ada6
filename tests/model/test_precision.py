"""Every fast, reduced-precision and compiled path against its stated agreement (CPU).

- decoder fast path (cache, re-association, channels-last upscaling) == reference path, <= 1e-4
  relative on logits and IoU (the parity tests check the reference path against Meta's);
- TinyViT batch-norm folding == unfolded, <= 1e-5 relative; state dict keys unchanged;
- mask post-processing (composed per-axis maps) == upsample -> crop -> upsample, <= 1e-5 relative;
- bf16 (encoder, and encoder + decoder) masks: mean IoU >= 0.98 against fp32;
- torch.compile of the decoder == eager, <= 1e-4 relative;
- device / dtype selection: valid and invalid requests.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from reference import SMALL_CONFIG, make_image, randomize, randomize_batchnorm
from samkit.build import build_from_config
from samkit.device import select_device, select_dtype
from samkit.errors import SamkitError
from samkit.modeling import Sam
from samkit.modeling.tiny_vit import Conv2d_BN, TinyViT
from samkit.predictor import SamPredictor
from samkit.registry import TinyViTConfig
from samkit.transforms import postprocess_masks

torch.manual_seed(0)


@pytest.fixture(scope="module")
def small_sam() -> Sam:
    model = build_from_config(SMALL_CONFIG)
    randomize(model, seed=5)
    return model.eval()


@pytest.fixture(scope="module")
def encoded(small_sam: Sam) -> SamPredictor:
    pred = SamPredictor(small_sam)
    pred.set_image(make_image(300, 400, seed=3))
    return pred


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


PROMPTS = {
    "one point": {"points": (torch.tensor([[[500.0, 300.0]]]), torch.ones(1, 1, dtype=torch.int))},
    "box + point": {
        "points": (torch.tensor([[[400.0, 350.0]]]), torch.ones(1, 1, dtype=torch.int)),
        "boxes": torch.tensor([[100.0, 120.0, 700.0, 600.0]]),
    },
    "20 points x 3 (plain attention)": {
        "points": (torch.rand(3, 20, 2) * 700, torch.randint(0, 2, (3, 20), dtype=torch.int))
    },
    "7 boxes": {
        "boxes": torch.tensor([[10.0, 20.0, 300.0, 400.0]]).repeat(7, 1)
        + torch.arange(7.0)[:, None] * 40
    },
    "mask input": {
        "points": (torch.tensor([[[500.0, 300.0]]]), torch.ones(1, 1, dtype=torch.int)),
        "mask_input": torch.randn(1, 1, 256, 256) * 4,
    },
}


@pytest.mark.parametrize("case", list(PROMPTS))
@pytest.mark.parametrize("multimask", [True, False])
def test_fast_decoder_matches_reference_path(
    encoded: SamPredictor, case: str, multimask: bool
) -> None:
    model, features = encoded.model, encoded.features
    kwargs = PROMPTS[case]
    with torch.inference_mode():
        fast = model.decode(features, multimask_output=multimask, **kwargs)
        cached = model.decode(
            features, multimask_output=multimask, cache=model.prepare_decoder(features), **kwargs
        )
        model.mask_decoder.fast = False
        try:
            plain = model.decode(features, multimask_output=multimask, **kwargs)
        finally:
            model.mask_decoder.fast = True
    for name, got in (("fast", fast), ("cached", cached)):
        err_logits, err_iou = _rel(got[0], plain[0]), _rel(got[1], plain[1])
        print(f"{case} {name}: logits {err_logits:.1e} iou {err_iou:.1e}")
        assert got[0].shape == plain[0].shape
        assert err_logits <= 1e-4 and err_iou <= 1e-4
    assert 0.0 < float((plain[0] > 0).float().mean()) < 1.0, "degenerate masks"


def test_cache_lives_with_the_image_state(encoded: SamPredictor) -> None:
    state = encoded.get_image_state()
    encoded.predict(np.array([[100.0, 80.0]]), np.array([1]))
    cache = state.decoder.by_dtype[torch.float32]
    assert cache.matches(state.features)
    encoded.predict(np.array([[50.0, 60.0]]), np.array([1]))
    assert state.decoder.by_dtype[torch.float32] is cache  # computed once per image


def test_decoder_chunks_and_batched_images(small_sam: Sam, encoded: SamPredictor) -> None:
    boxes = torch.tensor([[10.0, 20.0, 300.0, 400.0]]) + torch.arange(5.0)[:, None] * 30
    whole = encoded.decode_low_res(None, None, boxes)
    chunked = SamPredictor(small_sam, decoder_batch=2)
    chunked.set_image_state(encoded.get_image_state())
    parts = chunked.decode_low_res(None, None, boxes)
    assert _rel(parts[0], whole[0]) <= 1e-5 and _rel(parts[1], whole[1]) <= 1e-5
    images = [make_image(300, 400, seed=3), make_image(200, 260, seed=4)]
    states = encoded.encode_batch(images, batch_size=2)
    assert [s.original_size for s in states] == [(300, 400), (200, 260)]
    assert _rel(states[0].features, encoded.features) <= 1e-4


def test_postprocess_matches_two_step_resampling() -> None:
    """The composed per-axis maps equal the reference's two bilinear resizes to float rounding,
    for landscape, portrait, degenerate and padded-chunk geometries and batched masks."""
    gen = torch.Generator().manual_seed(0)
    for inp, orig in [
        ((576, 1024), (720, 1280)),
        ((1024, 683), (700, 466)),
        ((1, 1024), (1, 3000)),
        ((576, 1024), (719, 1279)),  # no chunk size divides 719 / 1279: padded last chunk
        ((1024, 1024), (50, 50)),  # downsampling
    ]:
        for shape in ((2, 3, 256, 256), (4, 1, 256, 256)):
            low = torch.randn(shape, generator=gen) * 8
            ref = F.interpolate(low, (1024, 1024), mode="bilinear", align_corners=False)
            ref = F.interpolate(
                ref[..., : inp[0], : inp[1]], orig, mode="bilinear", align_corners=False
            )
            got = postprocess_masks(low, inp, orig, 1024)
            err = (got - ref).abs().max().item()
            print(inp, orig, shape, f"max |diff| {err:.2e}")
            assert got.shape == ref.shape and got.is_contiguous()
            assert err <= 1e-5 * max(1.0, ref.abs().max().item()), (inp, orig, shape, err)
            assert torch.equal(got > 0, ref > 0) or (got > 0).ne(ref > 0).float().mean() < 1e-6


def test_tinyvit_batchnorm_folding() -> None:
    config = TinyViTConfig(img_size=256)
    encoder = TinyViT(config)
    randomize_batchnorm(encoder, torch.Generator().manual_seed(0))
    encoder.eval()
    keys = set(encoder.state_dict())
    x = torch.randn(1, 3, 256, 256)
    with torch.no_grad():
        plain = encoder(x)
        encoder.fuse()
        fused = encoder(x)
    print(f"fused vs plain: {_rel(fused, plain):.1e}")
    assert _rel(fused, plain) <= 1e-5
    assert set(encoder.state_dict()) == keys  # official keys only
    convs = [m for m in encoder.modules() if isinstance(m, Conv2d_BN)]
    assert all(m.fused_weight is not None for m in convs)
    encoder.train()  # training sees the two layers again
    assert all(m.fused_weight is None for m in convs)
    encoder.eval().fuse()
    encoder.load_state_dict(encoder.state_dict())
    assert all(m.fused_weight is None for m in convs)


def _mean_iou(a: np.ndarray, b: np.ndarray) -> float:
    a2, b2 = a.reshape(len(a), -1), b.reshape(len(b), -1)
    union = (a2 | b2).sum(1)
    return float(np.where(union > 0, (a2 & b2).sum(1) / np.maximum(union, 1), 1.0).mean())


def _masks(pred: SamPredictor, image: np.ndarray) -> np.ndarray:
    pred.set_image(image)
    h, w = image.shape[:2]
    out = [
        pred.predict(np.array([[w * fx, h * fy]]), np.array([1]))[0]
        for fx, fy in [(0.3, 0.4), (0.7, 0.6)]
    ]
    boxes = (
        torch.tensor([[0.1, 0.1, 0.6, 0.7], [0.4, 0.2, 0.9, 0.9]])
        * torch.tensor([w, h, w, h])
        * 1024
        / max(h, w)
    )
    out.append(pred.predict_torch(None, None, boxes=boxes, multimask_output=False)[0][:, 0].numpy())
    return np.concatenate(out)


@pytest.mark.parametrize("decoder_dtype", [None, "bf16"])
def test_bf16_masks_agree_with_fp32(small_sam: Sam, decoder_dtype: str | None) -> None:
    image = make_image(300, 400, seed=7)
    ref = _masks(SamPredictor(small_sam), image)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # CPUs without native bf16 only warn about speed
        half = SamPredictor(small_sam, dtype="bf16", decoder_dtype=decoder_dtype)
        assert half.dtype == torch.bfloat16
        got = _masks(half, image)
    iou = _mean_iou(ref, got)
    print(f"bf16 (decoder {decoder_dtype or 'fp32'}) mean mask IoU vs fp32: {iou:.4f}")
    assert 0.02 < ref.mean() < 0.98, "degenerate masks"
    assert iou >= 0.98


@pytest.mark.slow
def test_compiled_decoder_matches_eager(encoded: SamPredictor) -> None:
    model, features = encoded.model, encoded.features
    kwargs = PROMPTS["box + point"]
    try:
        compiled = torch.compile(model.decode)
        with torch.inference_mode():
            got = compiled(features, **kwargs)
    except Exception as err:
        pytest.skip(f"torch.compile unavailable here: {type(err).__name__}: {err}")
    with torch.inference_mode():
        eager = model.decode(features, **kwargs)
    print(f"compiled vs eager: logits {_rel(got[0], eager[0]):.1e}")
    assert _rel(got[0], eager[0]) <= 1e-4 and _rel(got[1], eager[1]) <= 1e-4


@pytest.mark.parametrize(
    ("request_", "expected"),
    [("", "cpu"), (None, "cpu"), ("auto", "cpu"), ("cpu", "cpu"), (torch.device("cpu"), "cpu")],
)
def test_select_device(request_: str | None, expected: str) -> None:
    if torch.cuda.is_available() and request_ in ("", None, "auto"):
        expected = "cuda"
    assert select_device(request_).type == expected


@pytest.mark.parametrize("bad", ["tpu", "cuda:x", "gpu0"])
def test_select_device_rejects(bad: str) -> None:
    with pytest.raises(SamkitError, match="device"):
        select_device(bad)


def test_select_device_cuda_missing() -> None:
    if torch.cuda.is_available():
        pytest.skip("CUDA present")
    with pytest.raises(SamkitError, match="CUDA is not available"):
        select_device("cuda:0")


def test_select_dtype() -> None:
    cpu = torch.device("cpu")
    assert select_dtype(None, False, cpu) == torch.float32
    assert select_dtype(None, True, cpu) == torch.bfloat16  # half on CPU means bf16
    assert select_dtype("fp32", True, cpu) == torch.float32  # dtype wins over half
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert select_dtype("bf16", False, cpu) == torch.bfloat16
    with pytest.raises(SamkitError, match="not supported on CPU"):
        select_dtype("fp16", False, cpu)
    with pytest.raises(SamkitError, match="dtype must be"):
        select_dtype("int8", False, cpu)
    with pytest.raises(SamkitError, match="dtype must be"):
        select_dtype(torch.float64, False, cpu)


def test_predictor_rejects_bad_arguments(small_sam: Sam) -> None:
    with pytest.raises(SamkitError, match="fp16"):
        SamPredictor(small_sam, dtype="fp16")
    with pytest.raises(SamkitError, match="decoder_batch"):
        SamPredictor(small_sam, decoder_batch=0)


@pytest.mark.slow
def test_predictor_compiled_decoder_matches_eager(small_sam: Sam, encoded: SamPredictor) -> None:
    """The predictor's compiled decoder (with the per-image cache); a minute to compile on CPU."""
    compiled = SamPredictor(small_sam, compile="decoder")
    compiled.set_image_state(encoded.get_image_state())
    point, label = np.array([[100.0, 120.0]]), np.array([1])
    try:
        got = compiled.predict(point, label)
    except Exception as err:
        pytest.skip(f"torch.compile unavailable here: {type(err).__name__}: {err}")
    eager = encoded.predict(point, label)
    err = float(np.abs(got[2] - eager[2]).max() / np.abs(eager[2]).max())
    print(f"compiled predictor vs eager: low-res logits {err:.1e}")
    assert err <= 1e-4 and (got[0] != eager[0]).mean() <= 1e-4
    with pytest.raises(SamkitError, match="compile"):
        SamPredictor(small_sam, compile="everything")
