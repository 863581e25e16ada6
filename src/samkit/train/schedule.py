"""Optimiser and learning-rate schedule: AdamW with decoupled weight decay, linear warm-up, then
cosine or step decay, stepped once per optimiser step."""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch

from samkit.errors import SamkitError

__all__ = ["SCHEDULES", "lr_factor", "make_optimizer", "make_scheduler"]

SCHEDULES = ("cosine", "step", "constant")


def make_optimizer(
    groups: Iterable[dict] | Iterable[torch.nn.Parameter], lr: float, weight_decay: float
) -> torch.optim.AdamW:
    """AdamW over parameter groups (or parameters). Biases, norms and embeddings (tensors with
    fewer than 2 dimensions) get no weight decay, as in SAM's and timm's recipes."""
    decay, no_decay, extra = [], [], []
    for item in groups:
        if isinstance(item, dict):
            extra.append(item)
        elif item.ndim < 2:
            no_decay.append(item)
        else:
            decay.append(item)
    param_groups = [g for g in extra]
    if decay:
        param_groups.append({"params": decay, "weight_decay": weight_decay})
    if no_decay:
        param_groups.append({"params": no_decay, "weight_decay": 0.0})
    if not param_groups or not any(len(list(g["params"])) for g in param_groups):
        raise SamkitError("nothing to train: the task left no parameter with requires_grad=True")
    return torch.optim.AdamW(param_groups, lr=lr, weight_decay=weight_decay)


def lr_factor(
    step: int,
    total: int,
    warmup: int,
    schedule: str = "cosine",
    final: float = 0.01,
    step_every: int = 0,
    gamma: float = 0.1,
) -> float:
    """Multiplier of the base learning rate at optimiser step ``step`` (0-based) of ``total``.

    Linear warm-up from ``1 / (warmup + 1)`` to 1 over ``warmup`` steps, then ``cosine`` (down to
    ``final``), ``step`` (times ``gamma`` every ``step_every`` steps) or ``constant``.
    """
    if schedule not in SCHEDULES:
        raise SamkitError(f"schedule must be one of {', '.join(SCHEDULES)}, got {schedule!r}")
    if step < warmup:
        return (step + 1) / (warmup + 1)
    if schedule == "constant":
        return 1.0
    if schedule == "step":
        every = step_every or max(1, (total - warmup) // 3)
        return gamma ** ((step - warmup) // every)
    span = max(1, total - warmup)
    progress = min(1.0, (step - warmup) / span)
    return final + (1.0 - final) * 0.5 * (1.0 + math.cos(math.pi * progress))


def make_scheduler(
    optimizer: torch.optim.Optimizer,
    total: int,
    warmup: int,
    schedule: str = "cosine",
    final: float = 0.01,
    step_every: int = 0,
    gamma: float = 0.1,
) -> torch.optim.lr_scheduler.LambdaLR:
    """A LambdaLR over :func:`lr_factor`; call ``step()`` after each optimiser step."""
    lr_factor(0, total, warmup, schedule)  # validates the name before training starts

    def factor(step: int) -> float:
        return lr_factor(step, total, warmup, schedule, final, step_every, gamma)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
