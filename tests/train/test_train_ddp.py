"""Fine-tuning under ``torchrun --nproc_per_node=2`` (gloo, CPU) gives the weights of a
1-process run with the same global batch (to float tolerance); only rank 0 writes."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

from samkit.build import build_from_config
from samkit.train.api import train
from samkit.train.distributed import spawn
from train_helpers import TINY_TRAIN_CONFIG, one_thread, shapes_split


@pytest.mark.slow
def test_two_processes_equal_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    train_data, val_data = shapes_split(tmp_path / "shapes", 8, 2)
    torch.manual_seed(0)
    ckpt = tmp_path / "tiny.pt"
    torch.save(build_from_config(TINY_TRAIN_CONFIG).state_dict(), ckpt)
    settings = {"model": str(ckpt), "data": str(train_data), "val": str(val_data), "epochs": 2,
                "batch": 4, "lr": 1e-3, "clicks": 1, "device": "cpu", "progress": False}  # fmt: skip
    before = one_thread()
    try:
        single = train(**settings, project=str(tmp_path / "one"))
    finally:
        torch.set_num_threads(before)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(sys.path))
    rc = spawn("samkit.train.api:train", {**settings, "project": str(tmp_path / "two")}, nproc=2)
    assert rc == 0 and single is not None
    runs = sorted(p.name for p in (tmp_path / "two").iterdir())
    assert runs == ["train"]  # rank 1 wrote nothing
    a = torch.load(single.last, weights_only=True)  # type: ignore[arg-type]
    b = torch.load(tmp_path / "two" / "train" / "weights" / "last.pt", weights_only=True)
    diff = max(float((a[k] - b[k]).abs().max()) for k in a)
    moved = max(float((a[k] - torch.load(ckpt, weights_only=True)[k]).abs().max()) for k in a)
    print(
        f"torchrun 2 processes vs 1: max |dw| = {diff:.3g} (training moved weights by {moved:.3g})"
    )
    assert moved > 1e-3
    # Gradients agree to float rounding (summation order of the all-reduce); AdamW divides by
    # sqrt(v), so near-zero gradients turn that rounding into at most a few % of one lr step.
    assert diff < 0.1 * settings["lr"]  # type: ignore[operator]
