"""A model family registered from this file (its own tiny encoder and a square-resize geometry),
with no edit to ``src/``, runs through every entrance: ``SAM(...).predict`` (prompts and segment
everything), ``samkit val``, one fine-tuning step, the annotator's predict route and ``samkit
embed`` with the store read back."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from samkit import SAM
from samkit.families import Family, SquareResize, family_of, recognize, register_family
from samkit.families.sam1 import assemble
from samkit.registry import SamConfig
from shapes_data import make_shapes_dataset

SIDE = 64  # encoder input = prompt frame; embedding 4 x 4, low-res logits 16 x 16


@dataclass(frozen=True)
class ToyEncoderConfig:
    """A one-convolution encoder: patches of 16 px -> ``out_chans`` features."""

    img_size: int = SIDE
    out_chans: int = 32

    @property
    def kind(self) -> str:
        return "toy"

    @property
    def embedding_size(self) -> int:
        return self.img_size // 16

    def at_image_size(self, side: int) -> ToyEncoderConfig:
        return replace(self, img_size=side)


class ToyEncoder(nn.Module):
    def __init__(self, config: ToyEncoderConfig) -> None:
        super().__init__()
        self.patch = nn.Conv2d(3, config.out_chans, 16, stride=16)
        self.mix = nn.Conv2d(config.out_chans, config.out_chans, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mix(torch.nn.functional.gelu(self.patch(x)))


TOY_CONFIG = SamConfig(
    encoder=ToyEncoderConfig(),  # type: ignore[arg-type]
    prompt_embed_dim=32,
    mask_in_chans=4,
    decoder_num_heads=2,
    decoder_mlp_dim=64,
    iou_head_hidden_dim=32,
)


def recognize_toy(state_dict: Mapping[str, Any]) -> SamConfig | None:
    if "image_encoder.patch.weight" not in state_dict:
        return None
    return TOY_CONFIG


TOY = Family(
    name="toy-square",
    config_types=(ToyEncoderConfig,),
    recognize=recognize_toy,
    build=lambda config: assemble(config, ToyEncoder(config.encoder)),
    geometry=lambda config: SquareResize(config.image_size),
    encoder_blocks=lambda net: [net.image_encoder.mix],
)
register_family(TOY, replace=True)


@pytest.fixture(scope="module")
def toy_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    net = TOY.build(TOY_CONFIG)
    with torch.no_grad():  # a decoder that answers: masks are neither empty nor full
        for p in net.parameters():
            p.mul_(3.0)
    path = tmp_path_factory.mktemp("toy") / "toy_square.pt"
    torch.save(net.state_dict(), path)
    return path


@pytest.fixture(scope="module")
def shapes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_shapes_dataset(tmp_path_factory.mktemp("toy_shapes"), 3, size=(48, 80))


def _image(h: int = 48, w: int = 80) -> np.ndarray:
    rng = np.random.default_rng(3)
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_checkpoint_is_recognised_and_built_by_its_family(toy_ckpt: Path) -> None:
    family, config, _ = recognize(torch.load(toy_ckpt))
    assert family is TOY and config == TOY_CONFIG
    front = SAM(str(toy_ckpt), device="cpu")
    assert family_of(front.model) is TOY
    assert front.engine.geometry == SquareResize(SIDE)
    assert front.engine.low_res == 16


def test_predict_uses_the_family_geometry(toy_ckpt: Path) -> None:
    """A point on a non-square image is scaled per axis (square resize), not along the long
    side: the front's masks equal the network run by hand in the square frame."""
    front = SAM(str(toy_ckpt), device="cpu")
    image = _image()
    (res,) = front.predict(image[..., ::-1].copy(), points=[[60.0, 10.0]], labels=[1])
    net = front.model
    x = torch.from_numpy(SquareResize(SIDE).encoder_input(image, (123.675, 116.28, 103.53),
                                                          (58.395, 57.12, 57.375)))  # fmt: skip
    with torch.inference_mode():
        features = net.image_encoder(x)
        coords = torch.tensor([[[60.0 * SIDE / 80, 10.0 * SIDE / 48]]])
        sparse, dense = net.prompt_encoder((coords, torch.ones(1, 1, dtype=torch.int)), None, None)
        low, _ = net.mask_decoder(features, net.prompt_encoder.get_dense_pe(), sparse, dense, False)
        up = torch.nn.functional.interpolate(low, (SIDE, SIDE), mode="bilinear",
                                             align_corners=False)  # fmt: skip
        up = torch.nn.functional.interpolate(up, (48, 80), mode="bilinear", align_corners=False)
    want = (up[0, 0] > 0).numpy()
    got = np.asarray(res.masks.data)
    assert got.shape == (1, 48, 80)
    assert (got[0] != want).mean() < 0.005  # fast vs reference upsampling: a few edge pixels
    assert 0 < want.mean() < 1


def test_segment_everything_runs_on_the_family(toy_ckpt: Path) -> None:
    front = SAM(str(toy_ckpt), device="cpu")
    settings = {"points_per_side": 4, "pred_iou_thresh": 0.0, "stability_score_thresh": 0.0}
    (res,) = front.predict(_image()[..., ::-1].copy(), progress=False, **settings)
    assert res.stats["points"] == 16
    assert len(res) > 0
    assert all(r.shape == (48, 80) for r in (np.asarray(m) for m in res.masks.data))


def test_val_and_one_fine_tuning_step(toy_ckpt: Path, shapes: Path, tmp_path: Path) -> None:
    from samkit.evaluation import val
    from samkit.train.api import train

    res = val(str(toy_ckpt), shapes, protocols="box", device="cpu", save=False, verbose=False,
              progress=False, plots=False)  # fmt: skip
    miou = float(res.metrics["box"]["miou"])
    assert 0.0 <= miou <= 1.0 and res.metrics["box"]["n"] > 0
    result = train(model=str(toy_ckpt), data=str(shapes), val=None, val_fraction=0.0, epochs=1,
                   batch=2, clicks=0, prompts="box", project=str(tmp_path), progress=False)  # fmt: skip
    assert result is not None and result.last is not None
    trained = SAM(str(result.last), device="cpu")  # the saved weights are the family's again
    assert family_of(trained.model) is TOY
    before = torch.load(toy_ckpt)
    after = trained.model.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith("mask_decoder"))


def test_label_predict_route(toy_ckpt: Path, tmp_path: Path) -> None:
    pytest.importorskip("fastapi")
    import cv2
    from fastapi.testclient import TestClient

    from samkit.label import build
    from samkit.masks import rle_to_mask

    folder = tmp_path / "images"
    folder.mkdir()
    image = _image()
    cv2.imwrite(str(folder / "a.png"), image[..., ::-1])
    server = build(folder, str(toy_ckpt), "thing", output_dir=tmp_path / "out",
                   cache_dir=tmp_path / "cache", prefetch=0)  # fmt: skip
    client = TestClient(server.app)
    body = {"points": [[60.0, 10.0]], "labels": [1], "multimask": False}
    answer = client.post("/api/images/0/predict", json=body)
    assert answer.status_code == 200, answer.text
    got = rle_to_mask(answer.json()["masks"][0]["rle"])
    (want,) = SAM(str(toy_ckpt), device="cpu").predict(
        image[..., ::-1].copy(), points=[[60.0, 10.0]], labels=[1], multimask_output=False
    )
    np.testing.assert_array_equal(got, np.asarray(want.masks.data[0]))


def test_embed_and_read_the_store_back(toy_ckpt: Path, shapes: Path, tmp_path: Path) -> None:
    from samkit.embed import embed
    from samkit.embeddings import EmbeddingStore

    images = shapes.parent / "images"
    summary = embed(images, str(toy_ckpt), tmp_path / "store", device="cpu", progress=False)
    assert summary.encoded == 3 and summary.errors == 0
    store = EmbeddingStore(tmp_path / "store", summary.model_key)
    first = sorted(images.iterdir())[0]
    state = store.get(EmbeddingStore.key(first))
    assert state is not None and state.features.shape == (1, 32, 4, 4)
    assert state.input_size == (SIDE, SIDE)  # the square frame, not a padded long side
    engine = SAM(str(toy_ckpt), device="cpu").engine
    fresh = engine.encode(__import__("samkit.sources").sources.read_image(first))
    np.testing.assert_allclose(state.features, fresh.features.numpy(), rtol=0, atol=1e-6)
