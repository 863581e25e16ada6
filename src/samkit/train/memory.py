"""How many items one micro-batch may hold: the training loop's memory plan.

Before the first optimiser step the loop measures what one item of a step keeps alive: a
forward pass of the task's module on the heaviest item (:meth:`TrainTask.heaviest_item`) with
``torch.autograd.graph.saved_tensors_hooks`` summing the distinct storages autograd saves for
the backward pass (parameters and buffers excluded). That is the dominant, allocator-independent
part of a step's peak; the backward pass adds gradients of about the size of the largest saved
tensors, counted twice, and a margin of 2.5x covers what the hooks do not see (measured on
CPU: the process grew by up to ~1.5x the saved tensors in a MobileSAM decoder step and ~2.3x in
a TinyViT student step at 1024 px, with the allocator's fragmentation). Gradients and the
optimiser's two AdamW moments (3 x the trained parameters) come on top, once.

The budget is what the step may add to the process: ``memory=GB`` minus what the process holds
now (resident memory on CPU, allocated memory on CUDA), or by default 80 % of the memory the
system reports available (``MemAvailable`` / ``psutil``; free CUDA memory plus the caching
allocator's unused reserve). The plan keeps the global batch: with ``accumulate=0`` (default) it
takes the largest micro-batch that divides the per-process batch and fits (one item per
micro-batch for tasks that process items one after another anyway); an explicit ``accumulate``
that cannot fit is refused with the estimate, before the first step.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from samkit.errors import SamkitError
from samkit.train import rng

__all__ = [
    "MemoryPlan",
    "available_bytes",
    "item_bytes",
    "optimizer_bytes",
    "plan_micro_batches",
    "saved_bytes",
    "step_budget",
]

logger = logging.getLogger("samkit")

GB = 2**30
SAFETY = 0.8  # share of the available memory a step may take by default
MARGIN = 2.5  # on the saved tensors: temporaries the hooks do not see, fragmentation


@dataclass(frozen=True)
class MemoryPlan:
    """Items per micro-batch (``micro``) and micro-batches per step (``accumulate``), per
    process, with the estimate they were chosen from: ``per_item`` bytes one item's forward and
    backward need, ``fixed`` bytes of gradients and optimiser state, ``budget`` bytes a step
    may add (``inf``: unknown, not limited)."""

    micro: int
    accumulate: int
    per_item: float
    fixed: float
    budget: float

    @property
    def step_bytes(self) -> float:
        """Estimated memory one micro-batch's step adds."""
        return self.fixed + self.micro * self.per_item

    def describe(self, batch: int) -> str:
        return (
            f"batch={batch} as {self.accumulate} micro-batch(es) of {self.micro} per process: "
            f"~{self.step_bytes / GB:.2f} GB per step (~{self.per_item / GB:.2f} GB per item "
            f"+ {self.fixed / GB:.2f} GB gradients and optimiser state), "
            f"budget {_gb(self.budget)}"
        )


def _gb(value: float) -> str:
    return "unlimited" if value == float("inf") else f"{value / GB:.1f} GB"


def _meminfo_available() -> float | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        import psutil
    except ImportError:
        return None
    return float(psutil.virtual_memory().available)


def _resident_bytes() -> float:
    try:
        with open("/proc/self/statm") as f:
            return float(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0.0


def available_bytes(device: torch.device) -> float | None:
    """Memory this process could still take on ``device`` (None when unknown)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        unused = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
        return float(free + unused)
    return _meminfo_available()


def step_budget(device: torch.device, memory_gb: float = 0.0) -> float:
    """Bytes a training step may add: ``memory_gb`` (the process's total) minus what the
    process holds now, or by default :data:`SAFETY` of the available memory."""
    if memory_gb > 0:
        held = (
            float(torch.cuda.memory_allocated(device))
            if device.type == "cuda"
            else _resident_bytes()
        )
        return memory_gb * GB - held
    available = available_bytes(device)
    return float("inf") if available is None else SAFETY * available


@contextlib.contextmanager
def _count_saved(module: nn.Module) -> Iterator[dict[int, int]]:
    """Sizes of the distinct storages autograd saves inside the block, by storage address."""
    own = {t.untyped_storage().data_ptr() for t in (*module.parameters(), *module.buffers())}
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in own and storage.device.type != "meta":
            seen[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        yield seen


def saved_bytes(module: nn.Module, forward: Callable[[], Any]) -> float:
    """Estimated bytes of one forward and backward of ``forward()`` (a call of ``module``):
    the storages saved for backward, with :data:`MARGIN` and the backward's gradients of the
    largest ones. The module's buffers (batch-norm statistics) are restored afterwards."""
    buffers = [(b, b.detach().clone()) for b in module.buffers()]
    try:
        with _count_saved(module) as seen:
            out = forward()
        del out
    finally:
        with torch.no_grad():
            for b, old in buffers:
                b.copy_(old)
    sizes = sorted(seen.values(), reverse=True)
    return MARGIN * sum(sizes) + 2 * sum(sizes[:2])


def item_bytes(task: Any, autocast: Callable[[], contextlib.AbstractContextManager[Any]]) -> float:
    """:func:`saved_bytes` of one training step on ``task``'s heaviest item (a
    :class:`~samkit.train.TrainTask` after ``setup``), in training mode, under ``autocast()``;
    the random generators are left as they were."""
    module = task.module()
    module.train()
    index = task.heaviest_item()
    state = rng.get_state()

    def forward() -> torch.Tensor:
        with autocast():
            return module(task.batch([index], 0)).loss

    try:
        return saved_bytes(module, forward)
    finally:
        rng.set_state(state)


def optimizer_bytes(params: list[torch.Tensor]) -> float:
    """Gradients and AdamW's two moments of the trained parameters."""
    return 3.0 * sum(p.numel() * p.element_size() for p in params)


def plan_micro_batches(
    per_rank: int,
    accumulate: int,
    per_item: float,
    fixed: float,
    budget: float,
    *,
    batch: int,
    one_by_one: bool = False,
) -> MemoryPlan:
    """The micro-batch size for ``per_rank`` items per process and step.

    ``accumulate`` > 0: that many micro-batches, refused with the estimate when one does not
    fit ``budget``; 0: the largest divisor of ``per_rank`` that fits (1 when ``one_by_one``).
    """
    if accumulate > 0:
        micro = per_rank // accumulate
        chosen = MemoryPlan(micro, accumulate, per_item, fixed, budget)
        if chosen.step_bytes > budget:
            fits = [d for d in _divisors(per_rank) if fixed + d * per_item <= budget]
            hint = (
                f"accumulate={per_rank // fits[0]} (or accumulate=0 to choose)"
                if fits
                else "a smaller model input or a GPU with more memory"
            )
            raise SamkitError(
                f"batch={batch} with accumulate={accumulate} does not fit in memory: "
                f"{chosen.describe(batch)}. Use {hint}, a smaller batch, or memory=<GB> "
                f"if more is free"
            )
        return chosen
    sizes = [1] if one_by_one else _divisors(per_rank)
    for micro in sizes:
        chosen = MemoryPlan(micro, per_rank // micro, per_item, fixed, budget)
        if chosen.step_bytes <= budget:
            return chosen
    raise SamkitError(
        f"batch={batch}: even one item per micro-batch does not fit in memory "
        f"(~{(fixed + per_item) / GB:.2f} GB needed, budget {_gb(budget)}). Use a smaller model "
        f"input, fewer objects per image, or memory=<GB> if more is free"
    )


def _divisors(n: int) -> list[int]:
    """Divisors of ``n``, largest first."""
    return [d for d in range(n, 0, -1) if n % d == 0]
