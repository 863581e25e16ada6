"""Processes and devices for training: one process, or data parallel under ``torchrun``.

Under ``torchrun`` (``WORLD_SIZE`` > 1 in the environment) every process joins one process group
(NCCL on CUDA, gloo on CPU) and takes the GPU of its ``LOCAL_RANK``. ``device="0,1"`` given to a
training entry point outside ``torchrun`` re-launches the same call under
``python -m torch.distributed.run --nproc_per_node 2`` (as Ultralytics does): the call's keyword
arguments travel as JSON to :mod:`samkit.train.launch`, which imports the entry point and calls
it in every process.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from samkit.device import select_device
from samkit.errors import SamkitError

__all__ = [
    "DistContext",
    "all_reduce_sum",
    "cuda_devices",
    "init",
    "shutdown",
    "spawn",
    "under_torchrun",
]

logger = logging.getLogger("samkit")


@dataclass(frozen=True)
class DistContext:
    """Where this process trains: its rank among ``world`` processes and its device."""

    rank: int
    local_rank: int
    world: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """Rank 0: the only process that writes files and shows progress."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()


def under_torchrun() -> bool:
    """True inside a process started by ``torchrun`` with more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def cuda_devices(device: str | None) -> list[int]:
    """GPU indexes of a device string: ``"0,1"`` -> [0, 1], ``"cuda:1"`` -> [1], else []."""
    if device is None:
        return []
    text = str(device).strip().lower().replace("cuda:", "")
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if parts and all(p.isdigit() for p in parts):
        return [int(p) for p in parts]
    return []


def init(device: str | None) -> DistContext:
    """Join the process group when running under ``torchrun``; pick this process's device.

    ``device``: None (CUDA when available, else CPU), ``"cpu"``, ``"cuda"``, ``"cuda:1"``,
    ``"1"`` or, under torchrun, a list such as ``"0,1"`` (each process takes its LOCAL_RANK).
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device not in (None, "") and len(cuda_devices(device)) < 2:
        # the one device check (samkit.device.select_device): "cuda" / "mps" / "foo" with no
        # such device is an error, never a silent CPU run
        chosen = select_device(device)
        if world == 1 and chosen.type != "cuda":
            return DistContext(0, 0, 1, chosen)
    want_cpu = device is not None and str(device).strip().lower() == "cpu"
    use_cuda = torch.cuda.is_available() and not want_cpu
    if device not in (None, "", "cpu") and not use_cuda and cuda_devices(device):
        raise SamkitError(f"device={device!r} asks for CUDA, but torch sees no CUDA device")
    if world > 1:
        if not dist.is_initialized():
            dist.init_process_group("nccl" if use_cuda else "gloo")
        if use_cuda:
            torch.cuda.set_device(local)
        return DistContext(rank, local, world, torch.device("cuda", local) if use_cuda else _cpu())
    if not use_cuda:
        return DistContext(0, 0, 1, _cpu())
    gpus = cuda_devices(device)
    index = gpus[0] if gpus else torch.cuda.current_device()
    return DistContext(0, 0, 1, torch.device("cuda", index))


def _cpu() -> torch.device:
    return torch.device("cpu")


def shutdown() -> None:
    """Leave the process group (no-op outside torchrun)."""
    if dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(values: Sequence[float], ctx: DistContext) -> list[float]:
    """Element-wise sum of ``values`` over all processes (float64, returned on every rank)."""
    if not ctx.distributed:
        return [float(v) for v in values]
    backend_device = ctx.device if ctx.device.type == "cuda" else torch.device("cpu")
    t = torch.tensor(list(values), dtype=torch.float64, device=backend_device)
    dist.all_reduce(t)
    return [float(v) for v in t.tolist()]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def spawn(entry: str, kwargs: dict[str, Any], nproc: int, devices: Sequence[int] = ()) -> int:
    """Run ``entry(**kwargs)`` (``"module:function"``) in ``nproc`` processes under torchrun.

    ``devices``: the GPUs to use (set as CUDA_VISIBLE_DEVICES). Returns torchrun's exit code.
    The keyword arguments must be JSON-serialisable.
    """
    with tempfile.NamedTemporaryFile("w", suffix=".json", prefix="samkit-ddp-", delete=False) as f:
        json.dump({"entry": entry, "kwargs": kwargs}, f)
        spec = f.name
    env = dict(os.environ)
    if devices:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(str(d) for d in devices)
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        f"--nproc_per_node={nproc}",
        f"--master_port={_free_port()}",
        "-m",
        "samkit.train.launch",
        spec,
    ]
    logger.info("DDP: %s", " ".join(cmd))
    try:
        return subprocess.run(cmd, env=env, check=False).returncode
    finally:
        os.unlink(spec)
