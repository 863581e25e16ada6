"""The generic training loop (samkit.train.trainer) on a tiny regression task: run folder,
resume after a kill, gradient accumulation, torchrun data parallel, bad settings."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import torch

from samkit.errors import SamkitError
from samkit.train import TrainConfig, fit
from samkit.train.distributed import spawn
from samkit.train.runs import read_args
from train_toy import ToyTask


def _config(tmp_path: Path, **kw: object) -> TrainConfig:
    base: dict = {"epochs": 3, "batch": 4, "lr": 1e-2, "project": str(tmp_path), "progress": False}
    base.update(kw)
    return TrainConfig(**base)  # type: ignore[arg-type]


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)


def _max_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    """Largest parameter difference (the toy's ``seen`` counter is per process under DDP)."""
    assert a.keys() == b.keys()
    return max(float((a[k].float() - b[k].float()).abs().max()) for k in a if k != "seen")


def test_run_folder_outputs(tmp_path: Path) -> None:
    result = fit(ToyTask(), _config(tmp_path, name="toy"))
    run = result.run_dir
    assert run == tmp_path / "toy"
    for name in ("args.yaml", "results.csv", "results.json", "results.png"):
        assert (run / name).is_file(), name
    args = read_args(run)
    assert args["epochs"] == 3 and args["lr"] == 1e-2 and args["n"] == 24
    rows = json.loads((run / "results.json").read_text())
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert rows[-1]["train/loss"] < rows[0]["train/loss"]  # it learns
    assert set(_weights(run / "weights" / "best.pt")) == set(_weights(run / "weights" / "last.pt"))
    second = fit(ToyTask(), _config(tmp_path, name="toy", epochs=1))
    assert second.run_dir == tmp_path / "toy2"  # never overwrites
    assert (run / "weights" / "last.pt").is_file()


class _Killed(Exception):
    pass


class _KilledTask(ToyTask):
    """Dies in the middle of epoch ``at`` (after some optimiser steps of it)."""

    def __init__(self, at: int) -> None:
        super().__init__()
        self.at, self.calls = at, 0

    def batch(self, indices: list[int], epoch: int):  # type: ignore[no-untyped-def]
        if epoch == self.at:
            self.calls += 1
            if self.calls == 3:
                raise _Killed
        return super().batch(indices, epoch)


def test_resume_after_kill_equals_uninterrupted(tmp_path: Path) -> None:
    full = fit(ToyTask(), _config(tmp_path / "a", epochs=4))
    with pytest.raises(_Killed):
        fit(_KilledTask(at=2), _config(tmp_path / "b", epochs=4))
    resumed = fit(ToyTask(), _config(tmp_path / "b", epochs=4, resume=True))
    assert resumed.run_dir == tmp_path / "b" / "train"
    diff = _max_diff(_weights(full.last), _weights(resumed.last))  # type: ignore[arg-type]
    print(f"resume vs uninterrupted: max |dw| = {diff:.3g}")
    assert diff < 1e-6
    assert [r["epoch"] for r in resumed.rows] == [1, 2, 3, 4]
    assert resumed.rows[-1]["train/loss"] == pytest.approx(full.rows[-1]["train/loss"], rel=1e-5)


@pytest.mark.slow
def test_accumulation_equals_one_big_batch(tmp_path: Path) -> None:
    one = fit(ToyTask(), _config(tmp_path / "a", epochs=2, batch=8))
    acc = fit(ToyTask(), _config(tmp_path / "b", epochs=2, batch=8, accumulate=4))
    diff = _max_diff(_weights(one.last), _weights(acc.last))  # type: ignore[arg-type]
    print(f"accumulate=4 vs 1: max |dw| = {diff:.3g}")
    assert diff < 1e-5


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"batch": 6, "accumulate": 4}, "multiple of processes x accumulate"),
        ({"batch": 64}, "larger than the training set"),
        ({"epochs": 0}, "epochs must be >= 1"),
        ({"schedule": "linear"}, "schedule must be one of"),
        ({"resume": True}, "nothing|no run"),
    ],
)
def test_bad_settings(tmp_path: Path, settings: dict, message: str) -> None:
    with pytest.raises(SamkitError, match=message):
        fit(ToyTask(), _config(tmp_path / "empty", **settings))


@pytest.mark.slow
def test_torchrun_two_processes_equal_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tests = str(Path(__file__).resolve().parents[1])
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([tests, *sys.path]))
    kwargs = {"epochs": 2, "batch": 8, "lr": 1e-2, "progress": False, "device": "cpu"}
    single = fit(ToyTask(), _config(tmp_path / "one", **kwargs))
    rc = spawn("train_toy:run_toy", {**kwargs, "project": str(tmp_path / "two")}, nproc=2)
    assert rc == 0
    two = tmp_path / "two" / "train" / "weights" / "last.pt"
    assert not (tmp_path / "two" / "train2").exists()  # only rank 0 wrote
    diff = _max_diff(_weights(single.last), _weights(two))  # type: ignore[arg-type]
    print(f"torchrun 2 processes vs 1: max |dw| = {diff:.3g}")
    assert diff < 1e-5
