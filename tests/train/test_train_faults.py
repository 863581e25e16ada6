"""What a careful user hits with ``samkit train``: a bad image is reported and skipped, a loss
that turns NaN stops the run without writing NaN weights, a device that is not there is an
error, bad settings name their key, a resume with other settings is refused before setup, and a
full disk says so (and leaves no temporary file behind)."""

from __future__ import annotations

import errno
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from samkit.build import build_from_config
from samkit.errors import SamkitError
from samkit.train import TrainConfig, fit, runs
from samkit.train.api import train
from shapes_data import make_shapes_dataset
from train_helpers import TINY_TRAIN_CONFIG, one_thread
from train_toy import ToyTask


@pytest.fixture(autouse=True)
def _single_thread() -> Iterator[None]:
    before = one_thread()
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    torch.save(build_from_config(TINY_TRAIN_CONFIG).state_dict(), path)
    return path


def _config(tmp_path: Path, **kw: Any) -> TrainConfig:
    base: dict[str, Any] = {"epochs": 2, "batch": 4, "lr": 1e-2, "project": str(tmp_path),
                            "progress": False, "plots": False}  # fmt: skip
    base.update(kw)
    return TrainConfig(**base)


# ---------------------------------------------------------------------------- bad files
@pytest.mark.parametrize("damage", ["truncated", "empty"])
def test_bad_image_in_a_yolo_training_set_is_named_and_skipped(
    tmp_path: Path, tiny_ckpt: Path, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    make_shapes_dataset(tmp_path / "ds", 5, size=(64, 80), seed=1, fmt="yolo")
    bad = tmp_path / "ds" / "images" / "shapes_002.png"
    content = bad.read_bytes()
    bad.write_bytes(content[: len(content) // 2] if damage == "truncated" else b"")
    result = train(model=str(tiny_ckpt), data=str(tmp_path / "ds"), val_fraction=0.0, epochs=1,
                   batch=2, clicks=0, prompts="box", project=str(tmp_path / "runs"),
                   progress=False, plots=False)  # fmt: skip
    assert result is not None and result.best is not None and result.best.is_file()
    assert any("shapes_002.png" in r.getMessage() for r in caplog.records)


# ---------------------------------------------------------------------------- NaN
class _Diverging(ToyTask):
    """The toy task whose loss turns NaN in the second epoch (the memory plan's probe and
    micro-batches also call ``batch``, so the epoch decides, not a count of calls)."""

    def batch(self, indices: list[int], epoch: int) -> Any:
        x, y = super().batch(indices, epoch)
        return (x * float("nan"), y) if epoch >= 1 else (x, y)


def test_nan_loss_stops_the_run_and_keeps_finite_weights(tmp_path: Path) -> None:
    from samkit.train.guards import NonFiniteError

    with pytest.raises(NonFiniteError, match=r"loss is nan at epoch 2.*lr=") as exc:
        fit(_Diverging(), _config(tmp_path, name="nan"))
    assert "learning rate" in str(exc.value)
    best = torch.load(tmp_path / "nan" / "weights" / "best.pt", weights_only=True)
    assert all(torch.isfinite(v).all() for v in best.values())  # epoch 1's, untouched


def test_non_finite_weights_are_never_written(tmp_path: Path) -> None:
    from samkit.train.guards import NonFiniteError

    class Blows(ToyTask):
        def weights(self) -> dict[str, torch.Tensor]:
            return {"w": torch.tensor([1.0, float("inf")])}

    with pytest.raises(NonFiniteError, match="w holds NaN or infinite values"):
        fit(Blows(), _config(tmp_path, name="inf", epochs=1))
    assert not list((tmp_path / "inf" / "weights").glob("*.pt"))


@pytest.mark.parametrize(
    ("key", "value"),
    [("lr", float("inf")), ("lr", float("nan")), ("seed", -1), ("batch", 0), ("clip", -1.0)],
)
def test_bad_training_settings_name_the_key(tmp_path: Path, key: str, value: Any) -> None:
    with pytest.raises(SamkitError, match=f"{key} must be"):
        train(model="no-such.pt", data=str(tmp_path), project=str(tmp_path), **{key: value})


def test_distill_refuses_the_same_settings(tmp_path: Path) -> None:
    import samkit

    for key, value in (("lr", float("inf")), ("seed", -1), ("batch", 0)):
        with pytest.raises(SamkitError, match=f"{key} must be"):
            samkit.distill(teacher=str(tmp_path / "none.pt"), data=str(tmp_path),
                           project=str(tmp_path), **{key: value})  # fmt: skip


# ---------------------------------------------------------------------------- devices
@pytest.mark.parametrize("device", ["cuda", "cuda:0", "mps", "foo"])
def test_missing_device_is_an_error_not_a_cpu_run(tmp_path: Path, device: str) -> None:
    if device.startswith("cuda") and torch.cuda.is_available():
        pytest.skip("CUDA is there")
    mps = getattr(torch.backends, "mps", None)
    if device == "mps" and mps is not None and mps.is_available():
        pytest.skip("MPS is there")
    task = ToyTask()
    with pytest.raises(SamkitError, match="device"):
        fit(task, _config(tmp_path, device=device))
    assert not hasattr(task, "net")  # refused before setup


# ---------------------------------------------------------------------------- resume
def _finished_run(tmp_path: Path, **args: Any) -> Path:
    run = tmp_path / "runs" / "train"
    (run / "weights").mkdir(parents=True)
    (run / "weights" / runs.STATE_FILE).write_bytes(b"")
    base = {"model": "tiny.pt", "data": "a.json", "train": "decoder", "epochs": 2, "lr": 1e-4}
    runs.write_args(run, {**base, **args})
    return run


@pytest.mark.parametrize(
    ("changed", "key"),
    [({"data": "b.json"}, "data"), ({"train": "decoder,encoder"}, "train")],
)
def test_resume_with_other_settings_is_refused_before_setup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, changed: dict, key: str
) -> None:
    from samkit.train import finetune

    run = _finished_run(tmp_path)
    monkeypatch.setattr(finetune.FineTuneTask, "setup", lambda *a: pytest.fail("setup ran"))
    with pytest.raises(SamkitError, match=rf"resume: .* other settings: {key}=") as exc:
        kwargs = {"model": "tiny.pt", "data": "a.json", "project": str(tmp_path / "runs")}
        train(resume=str(run), **{**kwargs, **changed})
    assert str(run) in str(exc.value)


def test_resume_takes_the_runs_own_settings(tmp_path: Path) -> None:
    from samkit.train.finetune import FineTuneSettings
    from samkit.train.guards import resume_settings
    from samkit.train.settings import setting_defaults

    run = _finished_run(tmp_path, train="decoder,encoder", lr=3e-4)
    out = resume_settings({"resume": True, "project": str(tmp_path / "runs"), "epochs": 5},
                          setting_defaults(FineTuneSettings), "trained")  # fmt: skip
    assert out["train"] == "decoder,encoder" and out["lr"] == 3e-4 and out["data"] == "a.json"
    assert out["epochs"] == 5 and out["resume"] == str(run)


# ---------------------------------------------------------------------------- disk
def _enospc(*args: Any, **kwargs: Any) -> None:
    raise OSError(errno.ENOSPC, "No space left on device")


def test_disk_full_names_the_checkpoint_and_leaves_no_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runs.torch, "save", _enospc)
    with pytest.raises(SamkitError, match=r"disk full while writing the checkpoint .*last\.pt"):
        fit(ToyTask(), _config(tmp_path, name="full", epochs=1))
    weights = tmp_path / "full" / "weights"
    assert not list(weights.glob("*.tmp")) and not list(weights.glob(".*"))


def test_torch_zip_writer_error_on_a_full_disk_says_disk_full(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    def enforce_fail(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 64")

    monkeypatch.setattr(runs.torch, "save", enforce_fail)
    monkeypatch.setattr(runs.shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(1, 1, 0))  # type: ignore[attr-defined]
    with pytest.raises(SamkitError, match="disk full"):
        runs.save_torch({"a": torch.zeros(1)}, tmp_path / "w" / "last.pt")


def test_partial_checkpoint_of_an_interrupted_run_is_removed_on_the_next_start(
    tmp_path: Path,
) -> None:
    weights = tmp_path / "run" / "weights"
    weights.mkdir(parents=True)
    stale = weights / ".last.pt.x1y2z3.tmp"
    stale.write_bytes(b"\0" * 1024)
    result = fit(ToyTask(), _config(tmp_path, name="run", exist_ok=True, epochs=1))
    assert result.last is not None and result.last.is_file()
    assert not stale.exists()
