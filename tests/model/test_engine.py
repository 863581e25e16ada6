"""One engine behind every path: what is set on ``SAM(...)`` holds for prompts, segment
everything and auto-annotation, through one predictor object per ``SAM``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import samkit.predictor
from front_helpers import QUICK_EVERYTHING, write_image
from reference import make_image
from samkit import SAM
from samkit.annotate import auto_annotate
from samkit.engine import Engine, TorchEngine, as_engine
from samkit.errors import SamkitError


@pytest.fixture(scope="module")
def tiny_ckpt(tiny_checkpoint: Path) -> Path:
    return tiny_checkpoint


class EncoderProbe:
    """Records the compute dtype and device of the encoder's first linear layer per call."""

    def __init__(self, sam: SAM) -> None:
        self.calls: list[tuple[torch.dtype, str]] = []
        layer = next(m for m in sam.model.image_encoder.modules() if isinstance(m, torch.nn.Linear))
        layer.register_forward_hook(self._hook)

    def _hook(self, _module: Any, _inputs: Any, output: torch.Tensor) -> None:
        self.calls.append((output.dtype, output.device.type))


def count_predictors(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    made: list[object] = []
    original = samkit.predictor.SamPredictor.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        made.append(self)
        original(self, *args, **kwargs)

    monkeypatch.setattr(samkit.predictor.SamPredictor, "__init__", init)
    return made


def test_sam_options_hold_on_every_path(
    tiny_ckpt: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = count_predictors(monkeypatch)
    sam = SAM(tiny_ckpt, device="cpu", dtype=torch.bfloat16, decoder_batch=3)
    probe = EncoderProbe(sam)
    image = make_image(96, 128, seed=1)

    # segment everything: bf16 encoder, the front's engine and decoder batch
    result = sam.segment_everything(image, **QUICK_EVERYTHING)
    assert len(result) > 0
    assert probe.calls == [(torch.bfloat16, "cpu")]
    generator = sam._automatic(dict(QUICK_EVERYTHING))
    assert generator.engine is sam.engine

    # auto-annotation with the SAM front: the same engine, same dtype, same device
    folder = tmp_path / "images"
    folder.mkdir()
    write_image(folder / "a.png", 96, 128, seed=2)

    def boxes(_image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return np.array([[10.0, 10.0, 60.0, 50.0]]), np.array([0]), np.array([0.9])

    summary = auto_annotate(
        folder, det_model=boxes, sam_model=sam, output_dir=tmp_path / "out", progress=False,
        verbose=False,
    )  # fmt: skip
    assert summary.annotated == 1
    assert probe.calls[1:] == [(torch.bfloat16, "cpu")]

    # prompts, after everything: still the one predictor
    sam.predict(image, bboxes=[[5, 5, 50, 40]])
    assert len(probe.calls) == 3 and probe.calls[-1] == (torch.bfloat16, "cpu")
    assert len(made) == 1 and made[0] is sam.engine.predictor  # type: ignore[attr-defined]
    assert sam.engine.decoder_batch == 3


def test_generator_keeps_the_fronts_current_image(tiny_ckpt: Path) -> None:
    sam = SAM(tiny_ckpt, device="cpu")
    image = make_image(64, 64, seed=3)
    before = sam.predict(image, points=[[30, 30]])[0].masks
    state = sam.engine.get_state()
    sam.segment_everything(make_image(80, 60, seed=4), **QUICK_EVERYTHING)
    assert sam.engine.get_state().original_size == state.original_size
    again = sam.segment_prompts(None, points=[[30, 30]], current_rgb=image[:, :, ::-1])
    assert np.array_equal(np.asarray(again.masks), np.asarray(before))


def test_as_engine_dispatch(tiny_ckpt: Path) -> None:
    sam = SAM(tiny_ckpt, device="cpu")
    assert as_engine(sam) is sam.engine
    assert as_engine(sam.engine) is sam.engine
    assert isinstance(sam.engine, Engine)
    wrapped = as_engine(sam.engine.predictor)  # type: ignore[attr-defined]
    assert isinstance(wrapped, TorchEngine) and wrapped.predictor is sam.engine.predictor  # type: ignore[attr-defined]
    fresh = as_engine(sam.model, decoder_batch=2)
    assert isinstance(fresh, TorchEngine) and fresh.decoder_batch == 2
    with pytest.raises(SamkitError, match="cannot change"):
        as_engine(sam, dtype="bf16")
    with pytest.raises(SamkitError, match="model must be"):
        as_engine(42)


def test_decoder_batch_is_one_name(tiny_ckpt: Path) -> None:
    """The per-call decoder batch splits decoding into passes without changing the output; the
    old spelling ``batch_size`` is accepted."""
    sam = SAM(tiny_ckpt, device="cpu")
    image = make_image(64, 80, seed=5)
    boxes = [[2, 2, 40, 30], [10, 5, 70, 60], [0, 0, 79, 63], [20, 20, 30, 30], [1, 30, 50, 60]]
    one = sam.predict(image, bboxes=boxes, decoder_batch=1)[0]
    many = sam.predict(image, bboxes=boxes, batch_size=64)[0]
    np.testing.assert_allclose(one.scores, many.scores, atol=1e-5)
    assert (np.asarray(one.masks) != np.asarray(many.masks)).mean() < 1e-3
    with pytest.raises(SamkitError, match="decoder_batch"):
        sam.predict(image, bboxes=boxes, decoder_batch=0)


def test_fast_decoder_is_per_instance_and_threads_follow_the_engine_policy(
    tiny_ckpt: Path,
) -> None:
    from samkit import device as devices
    from samkit.build import build_sam
    from samkit.predictor import PreparedDecoder

    a, b = build_sam(tiny_ckpt), build_sam(tiny_ckpt)
    a.mask_decoder.fast = False
    assert b.mask_decoder.fast and not a.mask_decoder.fast

    x = torch.zeros(2, 5, 8)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    seen: list[int] = []
    try:
        with devices.token_work(x):  # no policy: nothing is serialised
            seen.append(torch.get_num_threads())
        with devices.thread_policy(devices.ThreadPolicy()), devices.token_work(x):
            seen.append(torch.get_num_threads())
        with devices.thread_policy(devices.ThreadPolicy(serial_rows=4)), devices.token_work(x):
            seen.append(torch.get_num_threads())  # 10 rows > 4: all threads
        assert seen == [2, 1, 2] and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)

    sam = SAM(tiny_ckpt, device="cpu")
    sam.predict(make_image(64, 64, seed=6), points=[[20, 20]])
    state = sam.engine.get_state()
    assert isinstance(state.decoder, PreparedDecoder)
    assert list(state.decoder.by_dtype) == [torch.float32]
    assert sam.engine.predictor.thread_policy == devices.ThreadPolicy()  # type: ignore[attr-defined]
