"""SAM 2 checkpoints: recognition from the tensors, strict loading in Meta's layout (video
tensors kept), names, Meta's ``build_sam2`` signature, and the front / ``build_sam`` entrances."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from samkit.errors import ArgumentError, CheckpointError, DownloadError
from samkit.sam2.architecture import infer_sam2_config
from samkit.sam2.build import build_sam2, build_sam2_from_config
from samkit.sam2.variants import SAM2_VARIANTS, find_sam2_variant


def _meta_state(config: str) -> dict[str, torch.Tensor]:
    pytest.importorskip("sam2")
    from sam2.build_sam import build_sam2 as meta_build

    return meta_build(config, None, device="cpu").state_dict()


@pytest.mark.parametrize("name", sorted(SAM2_VARIANTS))
def test_every_variant_recognised_from_its_tensors(name: str) -> None:
    config = SAM2_VARIANTS[name].config
    with torch.device("meta"):
        state = build_sam2_from_config(config).state_dict()
    assert infer_sam2_config(state) == config


@pytest.mark.parity
@pytest.mark.parametrize("version", ["sam2.1", "sam2"])
def test_keys_and_shapes_equal_metas(version: str) -> None:
    """Every tensor of Meta's network, video modules included, under its name and shape."""
    variant = SAM2_VARIANTS[f"{version}_hiera_tiny"]
    theirs = _meta_state(variant.config_file)
    ours = build_sam2_from_config(variant.config).state_dict()
    assert set(ours) == set(theirs)
    assert all(ours[k].shape == theirs[k].shape for k in theirs)
    assert infer_sam2_config(theirs) == variant.config


def test_names_resolve() -> None:
    for alias in (
        "sam2.1_t.pt",
        "sam2.1_t",
        "sam2.1_hiera_tiny.pt",
        "configs/sam2.1/sam2.1_hiera_t.yaml",
        "facebook/sam2.1-hiera-tiny",
    ):
        variant = find_sam2_variant(alias)
        assert variant is not None and variant.name == "sam2.1_hiera_tiny"
    assert find_sam2_variant("sam2_b.pt").name == "sam2_hiera_base_plus"  # type: ignore[union-attr]
    assert find_sam2_variant("sam2.1_hiera_b+.yaml").name == "sam2.1_hiera_base_plus"  # type: ignore[union-attr]
    large = SAM2_VARIANTS["sam2.1_hiera_large"]
    assert large.size == 898_083_611 and large.url.endswith("/092824/sam2.1_hiera_large.pt")


@pytest.fixture(scope="module")
def tiny_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A seeded random SAM 2.1 tiny checkpoint in Meta's layout, named as Meta names it."""
    from reference import randomize

    model = build_sam2_from_config(SAM2_VARIANTS["sam2.1_hiera_tiny"].config)
    state = randomize(model, 5)
    folder = tmp_path_factory.mktemp("sam2_home")
    torch.save({"model": state}, folder / "sam2.1_hiera_tiny.pt")
    return folder / "sam2.1_hiera_tiny.pt"


def test_build_sam2_meta_signature(tiny_file: Path) -> None:
    model = build_sam2("configs/sam2.1/sam2.1_hiera_t.yaml", str(tiny_file), device="cpu")
    assert model.variant == "sam2.1_hiera_tiny" and not model.training
    assert model.sam_mask_decoder.dynamic_multimask_via_stability
    plain = build_sam2("sam2.1_hiera_t.yaml", tiny_file, device="cpu", apply_postprocessing=False)
    assert not plain.sam_mask_decoder.dynamic_multimask_via_stability
    saved = torch.load(tiny_file, weights_only=True)["model"]
    assert all(torch.equal(model.state_dict()[k], v) for k, v in saved.items())
    with pytest.raises(CheckpointError, match="not the one"):
        build_sam2("configs/sam2.1/sam2.1_hiera_s.yaml", tiny_file, device="cpu")
    with pytest.raises(ArgumentError, match="unknown config"):
        build_sam2("sam3_hiera_t.yaml", tiny_file, device="cpu")


def test_truncated_state_refused(tiny_file: Path, tmp_path: Path) -> None:
    state = torch.load(tiny_file, weights_only=True)["model"]
    del state["memory_attention.norm.weight"]
    torch.save({"model": state}, tmp_path / "cut.pt")
    with pytest.raises(CheckpointError, match="missing"):
        build_sam2("configs/sam2.1/sam2.1_hiera_t.yaml", tmp_path / "cut.pt", device="cpu")


def test_names_through_the_front_and_build_sam(
    tiny_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ultralytics' and Meta's names load the cached file (no network)."""
    import samkit
    from samkit.sam2.engine import Sam2Engine

    monkeypatch.setenv("SAMKIT_HOME", str(tiny_file.parent))
    net = samkit.build_sam("sam2.1_hiera_tiny.pt")
    assert type(net).__name__ == "Sam2" and net.variant == "sam2.1_hiera_tiny"
    front = samkit.SAM("sam2.1_t.pt")
    assert isinstance(front.engine, Sam2Engine)
    predictor = samkit.SAM2ImagePredictor.from_pretrained("facebook/sam2.1-hiera-tiny")
    assert predictor.model.variant == "sam2.1_hiera_tiny"


def test_offline_refusal_is_clear(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import samkit

    monkeypatch.setenv("SAMKIT_HOME", str(tmp_path))
    monkeypatch.setenv("SAMKIT_WEIGHTS_URL", "http://127.0.0.1:9")  # nothing listens there
    with pytest.raises(DownloadError, match=r"sam2\.1_hiera_large"):
        samkit.SAM2ImagePredictor.from_pretrained("facebook/sam2.1-hiera-large")


def test_geometry_and_hole_filling() -> None:
    """The square frame and the CUDA-free clean-up of small holes and sprinkles."""
    from samkit.sam2.geometry import Sam2Geometry
    from samkit.sam2.transforms import fill_holes_and_sprinkles

    geo = Sam2Geometry(1024)
    pts = geo.apply_coords(np.array([[50.0, 20.0]]), (100, 200))
    assert np.allclose(pts, [[256.0, 204.8]]) and geo.input_size((100, 200)) == (1024, 1024)
    low = torch.full((1, 1, 32, 32), -5.0)
    low[..., 4:20, 4:20] = 5.0
    low[..., 10:12, 10:12] = -5.0  # a 4-pixel hole
    low[..., 28, 28] = 5.0  # a 1-pixel sprinkle
    out = fill_holes_and_sprinkles(low, 0.0, max_hole_area=4, max_sprinkle_area=1)
    assert (out[..., 10:12, 10:12] > 0).all() and out[..., 28, 28] < 0
    assert torch.equal(out[..., 4:8, 4:8], low[..., 4:8, 4:8])
    kept = fill_holes_and_sprinkles(low, 0.0, max_hole_area=3, max_sprinkle_area=0)
    assert (kept[..., 10:12, 10:12] < 0).all() and kept[..., 28, 28] > 0


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda p: p.predict(point_coords=[[1, 2]], point_labels=[1]), "set_image"),
        (lambda p: p.get_image_embedding(), "set_image"),
        (lambda p: p.predict_batch(None, None, box_batch=[[1, 2, 3, 4]]), "set_image_batch"),
    ],
)
def test_predictor_refuses_use_before_an_image(call: Any, message: str) -> None:
    from samkit.errors import SamkitError
    from samkit.sam2 import SAM2ImagePredictor

    config = replace(SAM2_VARIANTS["sam2.1_hiera_tiny"].config, image_size=128)
    predictor = SAM2ImagePredictor(build_sam2_from_config(config))
    with pytest.raises(SamkitError, match=message):
        call(predictor)


def test_predictor_input_errors() -> None:
    from samkit.errors import PromptError, SamkitError
    from samkit.sam2 import SAM2ImagePredictor

    config = replace(SAM2_VARIANTS["sam2.1_hiera_tiny"].config, image_size=128)
    predictor = SAM2ImagePredictor(build_sam2_from_config(config))
    with pytest.raises(ArgumentError, match="SAM 2 network"):
        SAM2ImagePredictor(torch.nn.Linear(2, 2))  # type: ignore[arg-type]
    with pytest.raises(SamkitError, match="uint8"):
        predictor.set_image(np.zeros((20, 30, 3), np.float32))
    predictor.set_image(np.zeros((20, 30, 3), np.uint8))
    with pytest.raises(PromptError, match="point_labels"):
        predictor.predict(point_coords=[[1, 2]])
    with pytest.raises(PromptError, match="point_coords must be"):
        predictor.predict(point_coords=[[1, 2, 3]], point_labels=[1])
    with pytest.raises(PromptError, match="one point group per box"):
        predictor.predict(box=[[0, 0, 5, 5], [1, 1, 6, 6]], point_coords=[[1, 2]], point_labels=[1])
    with pytest.raises(PromptError, match="mask_input"):
        predictor.predict(point_coords=[[1, 2]], point_labels=[1], mask_input=np.zeros((1, 8, 8)))
    with pytest.raises(PromptError, match="NaN"):
        predictor.predict(box=[0, 0, float("nan"), 4])
