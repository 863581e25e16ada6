"""Building models: registry builders, loading by content, strict key and shape checks."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import samkit
from reference import SMALL_CONFIG, SMALL_VIT
from samkit.build import build_from_config
from samkit.errors import CheckpointError
from samkit.registry import VARIANTS, TinyViTConfig


@pytest.fixture(scope="module")
def small_state() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return build_from_config(SMALL_CONFIG).state_dict()


@pytest.fixture(scope="module")
def mobile_state() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    state = build_from_config(VARIANTS["mobile_sam"].config).state_dict()
    # The official file carries TinyViT's classifier, which SAM never uses.
    state["image_encoder.norm_head.weight"] = torch.ones(320)
    state["image_encoder.norm_head.bias"] = torch.zeros(320)
    state["image_encoder.head.weight"] = torch.zeros(1000, 320)
    state["image_encoder.head.bias"] = torch.zeros(1000)
    return state


def test_registry_has_every_variant_and_alias() -> None:
    for name in [
        "sam_b",
        "sam_l",
        "sam_h",
        "mobile_sam",
        "vit_b",
        "vit_l",
        "vit_h",
        "vit_t",
        "default",
    ]:
        assert name in samkit.sam_model_registry
    assert samkit.sam_model_registry["vit_t"] is samkit.sam_model_registry["mobile_sam"]


def test_untrained_build_is_eval_and_named() -> None:
    model = samkit.sam_model_registry["vit_t"]()
    assert not model.training
    assert model.variant == "mobile_sam"
    assert isinstance(model.image_encoder, samkit.modeling.TinyViT)


@pytest.mark.parametrize("filename", ["mobile_sam.pt", "my_finetune_v3.bin", "sam_b.pt"])
def test_mobile_sam_loads_by_content_under_any_name(
    tmp_path: Path, mobile_state: dict[str, torch.Tensor], filename: str
) -> None:
    path = tmp_path / filename
    torch.save(mobile_state, path)
    model = samkit.build_sam(path)
    assert model.variant == "mobile_sam"
    loaded = model.state_dict()
    key = "mask_decoder.iou_token.weight"
    assert torch.equal(loaded[key], mobile_state[key])
    assert not any(k.startswith("image_encoder.head") for k in loaded)


def test_registry_builder_loads_matching_checkpoint(
    tmp_path: Path, mobile_state: dict[str, torch.Tensor]
) -> None:
    path = tmp_path / "weights.pt"
    torch.save({"model": mobile_state}, path)  # SAM2-style wrapper
    model = samkit.sam_model_registry["vit_t"](checkpoint=path)
    assert model.variant == "mobile_sam"


def test_registry_builder_rejects_other_architecture(
    tmp_path: Path, small_state: dict[str, torch.Tensor]
) -> None:
    path = tmp_path / "sam_vit_b_01ec64.pth"
    torch.save(small_state, path)
    with pytest.raises(CheckpointError, match=r"custom vit model, not the requested sam_b"):
        samkit.sam_model_registry["vit_b"](checkpoint=path)


def test_custom_config_round_trip(tmp_path: Path, small_state: dict[str, torch.Tensor]) -> None:
    path = tmp_path / "small.pth"
    torch.save(small_state, path)
    model = samkit.build_sam(path)
    assert model.config == SMALL_CONFIG
    assert model.variant is None
    assert model.image_encoder.config == SMALL_VIT


def test_missing_key_is_named(tmp_path: Path, mobile_state: dict[str, torch.Tensor]) -> None:
    state = dict(mobile_state)
    del state["mask_decoder.iou_token.weight"]
    path = tmp_path / "broken.pt"
    torch.save(state, path)
    with pytest.raises(CheckpointError) as err:
        samkit.build_sam(path)
    assert "broken.pt" in str(err.value)
    assert "mask_decoder.iou_token.weight" in str(err.value)


def test_unexpected_key_is_named(tmp_path: Path, small_state: dict[str, torch.Tensor]) -> None:
    state = dict(small_state)
    state["mask_decoder.extra_head.weight"] = torch.zeros(3)
    path = tmp_path / "extra.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointError, match=r"unexpected keys.*extra_head"):
        samkit.build_sam(path)


def test_shape_mismatch_is_named(tmp_path: Path, small_state: dict[str, torch.Tensor]) -> None:
    state = dict(small_state)
    state["mask_decoder.iou_prediction_head.layers.0.bias"] = torch.zeros(7)
    path = tmp_path / "shape.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointError, match=r"shape mismatch.*iou_prediction_head.layers.0.bias"):
        samkit.build_sam(path)


def test_only_tinyvit_classifier_is_dropped(small_state: dict[str, torch.Tensor]) -> None:
    from samkit.build import load_weights

    model = build_from_config(SMALL_CONFIG)
    state = dict(small_state)
    state["image_encoder.head.weight"] = torch.zeros(1000, 96)  # dropped silently by design
    load_weights(model, state)
    state["image_encoder.neck.9.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointError, match=r"neck\.9"):
        load_weights(model, state)


def test_build_needs_checkpoint_or_config() -> None:
    with pytest.raises(ValueError, match="checkpoint"):
        samkit.build_sam()
    model = samkit.build_sam(config=SMALL_CONFIG)
    assert model.config == SMALL_CONFIG


def test_reduced_tinyvit_builds_and_runs() -> None:
    config = samkit.SamConfig(
        encoder=TinyViTConfig(embed_dims=(16, 32, 48, 64), num_heads=(1, 2, 3, 4), img_size=256)
    )
    model = build_from_config(config)
    with torch.inference_mode():
        out = model.image_encoder(torch.zeros(1, 3, 256, 256))
    assert out.shape == (1, 256, 16, 16)


def _retag_as_cuda(src: Path, dst: Path) -> None:
    """Rewrite a CPU checkpoint so its storages say 'cuda:0', as in the official mobile_sam.pt."""
    import zipfile

    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename.endswith("data.pkl"):
                old, new = b"X\x03\x00\x00\x00cpu", b"X\x06\x00\x00\x00cuda:0"
                assert old in data, "unexpected pickle layout"
                data = data.replace(old, new)
            zout.writestr(item, data)


def test_checkpoint_with_cuda_tensors_loads_on_cpu(
    tmp_path: Path, mobile_state: dict[str, torch.Tensor]
) -> None:
    cpu_file = tmp_path / "cpu.pt"
    torch.save(mobile_state, cpu_file)
    cuda_file = tmp_path / "mobile_sam.pt"
    _retag_as_cuda(cpu_file, cuda_file)
    if not torch.cuda.is_available():  # the file really asks for CUDA storages
        with pytest.raises(RuntimeError, match="CUDA"):
            torch.load(cuda_file, weights_only=True)
    model = samkit.build_sam(cuda_file)
    assert model.device.type == "cpu"
    key = "mask_decoder.mask_tokens.weight"
    assert torch.equal(model.state_dict()[key], mobile_state[key])
