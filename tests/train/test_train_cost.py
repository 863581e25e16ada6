"""What a training step costs: the held-out evaluation decodes from the one embedding store (no
encoder pass with a frozen encoder), the memory plan (micro-batches chosen from the budget, an
explicit batch that cannot fit refused before the first step, the same gradients either way),
and the fast decoder path's gradients equal to the reference path's."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from samkit.build import build_from_config
from samkit.errors import SamkitError
from samkit.train import TrainConfig, fit
from samkit.train import memory as memory_mod
from samkit.train.api import train
from samkit.train.finetune import FineTuneTask
from samkit.train.losses import LossWeights
from samkit.train.model import PromptedSam, PromptSettings, StepItem, select_trainable
from train_helpers import TINY_TRAIN_CONFIG, one_thread, shapes_split
from train_toy import ToyTask

GB = 2**30


@pytest.fixture(autouse=True)
def _single_thread() -> Iterator[None]:
    before = one_thread()
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def shapes(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return shapes_split(tmp_path_factory.mktemp("shapes"), 8, 3)


def _tiny() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_from_config(TINY_TRAIN_CONFIG)


def test_heldout_evaluation_runs_no_encoder_pass(
    shapes: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    net = _tiny()
    calls = {"n": 0}
    net.image_encoder.register_forward_hook(lambda *_: calls.__setitem__("n", calls["n"] + 1))
    during_val: list[int] = []
    original = FineTuneTask.validate

    def counted(self: FineTuneTask, epoch: int) -> dict[str, float]:
        before = calls["n"]
        out = original(self, epoch)
        during_val.append(calls["n"] - before)
        return out

    monkeypatch.setattr(FineTuneTask, "validate", counted)
    result = train(network=net, data=str(shapes[0]), val=str(shapes[1]), epochs=2, batch=4,
                   lr=1e-3, clicks=1, project=str(tmp_path), progress=False)  # fmt: skip
    assert result is not None and len(result.rows) == 2
    assert result.rows[0]["val/box_mIoU"] >= 0
    print(f"encoder passes: {calls['n']} in all, per held-out evaluation {during_val}")
    assert during_val == [0, 0]
    assert calls["n"] == 8 + 3  # every training and held-out image once, in set-up


def test_plan_chooses_micro_batches_from_the_budget() -> None:
    plan = memory_mod.plan_micro_batches(8, 0, 1 * GB, 0.5 * GB, 3 * GB, batch=8)
    assert (plan.micro, plan.accumulate) == (2, 4)
    plan = memory_mod.plan_micro_batches(8, 0, 1 * GB, 0.5 * GB, 9 * GB, batch=8)
    assert (plan.micro, plan.accumulate) == (8, 1)
    plan = memory_mod.plan_micro_batches(8, 0, 1 * GB, 0.5 * GB, 9 * GB, batch=8, one_by_one=True)
    assert (plan.micro, plan.accumulate) == (1, 8)
    plan = memory_mod.plan_micro_batches(8, 2, 1 * GB, 0.5 * GB, 5 * GB, batch=8)
    assert (plan.micro, plan.accumulate) == (4, 2)
    with pytest.raises(SamkitError, match=r"batch=8 with accumulate=1 .*accumulate=4"):
        memory_mod.plan_micro_batches(8, 1, 1 * GB, 0.5 * GB, 3 * GB, batch=8)
    with pytest.raises(SamkitError, match="even one item"):
        memory_mod.plan_micro_batches(8, 0, 4 * GB, 0.5 * GB, 3 * GB, batch=8)


def test_saved_bytes_counts_the_activations() -> None:
    net = torch.nn.Sequential(
        torch.nn.Linear(1000, 1000), torch.nn.ReLU(), torch.nn.Linear(1000, 1)
    )
    x = torch.randn(256, 1000)
    estimate = memory_mod.saved_bytes(net, lambda: net(x).sum())
    activations = 2 * x.numel() * 4  # the first layer's output (ReLU) and the input it saves
    assert activations <= estimate <= 6 * activations


def test_requested_batch_that_cannot_fit_stops_before_the_first_step(
    shapes: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    steps = {"n": 0}
    monkeypatch.setattr(FineTuneTask, "batch", _counting(FineTuneTask.batch, steps))
    monkeypatch.setattr(memory_mod, "step_budget", lambda device, gb=0.0: 1e6)  # 1 MB free
    with pytest.raises(SamkitError, match=r"batch=4 with accumulate=2 does not fit.*GB per item"):
        train(network=_tiny(), data=str(shapes[0]), val=str(shapes[1]), epochs=1, batch=4,
              accumulate=2, project=str(tmp_path), progress=False)  # fmt: skip
    assert steps["n"] == 1  # the memory probe's one item, no training step
    assert not (tmp_path / "train" / "weights" / "last.pt").exists()


def _counting(fn, counter):  # type: ignore[no-untyped-def]
    def wrapped(self, indices, epoch):  # type: ignore[no-untyped-def]
        counter["n"] += 1
        return fn(self, indices, epoch)

    return wrapped


def test_auto_micro_batches_equal_the_unsplit_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = {"epochs": 2, "batch": 8, "lr": 1e-2, "progress": False, "val": False}
    whole = fit(ToyTask(), TrainConfig(project=str(tmp_path / "a"), **config))  # type: ignore[arg-type]
    forward_sizes: list[int] = []
    monkeypatch.setattr(memory_mod, "item_bytes", lambda task, autocast: 1.0 * GB)
    monkeypatch.setattr(memory_mod, "optimizer_bytes", lambda params: 0.0)
    monkeypatch.setattr(memory_mod, "step_budget", lambda device, gb=0.0: 2.5 * GB)
    original = ToyTask.batch
    monkeypatch.setattr(
        ToyTask, "batch", lambda self, idx, epoch: forward_sizes.append(len(idx)) or original(self, idx, epoch)
    )  # fmt: skip
    split = fit(ToyTask(), TrainConfig(project=str(tmp_path / "b"), **config))  # type: ignore[arg-type]
    assert set(forward_sizes[1:]) == {2}  # after the probe: micro-batches of 2 (budget 2.5 items)
    a = torch.load(whole.last, weights_only=True)  # type: ignore[arg-type]
    b = torch.load(split.last, weights_only=True)  # type: ignore[arg-type]
    diff = max(float((a[k].float() - b[k].float()).abs().max()) for k in a if k != "seen")
    print(f"micro-batches of 2 vs the whole batch of 8: max |dw| = {diff:.3g}")
    assert diff < 1e-5


def _step_items(sam: torch.nn.Module, n: int) -> list[StepItem]:
    rng = np.random.default_rng(0)
    items = []
    for i in range(n):
        t = torch.zeros(3, 64, 64)
        for k in range(3):
            y, x = rng.integers(8, 48, 2)
            t[k, y : y + 10 + k, x : x + 8] = 1
        boxes = np.array([[4 * x0, 4 * y0, 4 * x1, 4 * y1] for x0, y0, x1, y1 in
                          ((int(xx.min()), int(yy.min()), int(xx.max()), int(yy.max()))
                           for yy, xx in (np.nonzero(m.numpy()) for m in t))], np.float32)  # fmt: skip
        with torch.no_grad():
            emb = sam.image_encoder(
                torch.randn(1, 3, 256, 256, generator=torch.Generator().manual_seed(i))
            )
        items.append(StepItem(emb, None, t, boxes, np.random.default_rng([0, 0, i])))
    return items


def _grads(
    net: PromptedSam, items: list[StepItem], groups: list[list[int]]
) -> dict[str, torch.Tensor]:
    """Gradients of the summed loss of ``items``, back-propagated per group of indices."""
    net.zero_grad(set_to_none=True)
    for group in groups:
        for i in group:  # the same prompts whatever the grouping
            items[i].rng = np.random.default_rng([0, 0, i])
        net([items[i] for i in group]).loss.backward()
    return {n: p.grad.clone() for n, p in net.named_parameters() if p.grad is not None}


def test_fast_decoder_and_micro_batches_give_the_reference_gradients() -> None:
    sam = _tiny()
    select_trainable(sam, ["decoder"])
    net = PromptedSam(sam, PromptSettings(clicks=1, objects=3), LossWeights(), False).train()
    items = _step_items(sam, 3)
    sam.mask_decoder.fast = False
    reference = _grads(net, items, [[0, 1, 2]])
    sam.mask_decoder.fast = True
    fast = _grads(net, items, [[0, 1, 2]])
    one_by_one = _grads(net, items, [[0], [1], [2]])
    for name, ref in reference.items():  # (some are 0 up to rounding: softmax-invariant biases)
        tol = 1e-4 * float(ref.abs().max()) + 1e-8
        assert float((fast[name] - ref).abs().max()) < tol, name
        assert float((one_by_one[name] - ref).abs().max()) < tol, name
    print(f"{len(reference)} gradient tensors equal (fast path, one image per micro-batch)")


@pytest.mark.slow
def test_cold_start_decoder_learns_in_the_first_epochs(tmp_path: Path) -> None:
    """A randomly initialised decoder (frozen random encoder, the default recipe: decoder
    only, mixed prompts, click rounds) must not collapse to empty masks: its held-out box mIoU
    rises above the untrained model's within two epochs (SAM's plain focal weights leave it at
    0.00 here: every mask empty)."""
    from samkit.evaluation import val

    train_data, val_data = shapes_split(tmp_path / "shapes", 16, 6, seed=1)
    net = _tiny()
    start = val(net, val_data, protocols=("box",), save=False, plots=False, verbose=False,
                progress=False, device="cpu").metrics["box"]["miou"]  # fmt: skip
    result = train(network=_tiny(), data=str(train_data), val=str(val_data), epochs=2, batch=2,
                   lr=2e-3, project=str(tmp_path / "runs"), progress=False)  # fmt: skip
    assert result is not None
    boxes = [row["val/box_mIoU"] for row in result.rows]
    print(f"held-out box mIoU: untrained {start:.3f}, after epochs 1, 2: {boxes}")
    assert max(boxes) > start + 0.04
