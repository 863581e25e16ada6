"""A tiny regression task for the generic training loop's tests (and a torchrun entry point)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from samkit.train import DistContext, StepOutput, TrainConfig, TrainTask, fit


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(4, 16), nn.GELU(), nn.Linear(16, 1))
        self.register_buffer("seen", torch.zeros(()))

    def forward(self, batch: tuple[torch.Tensor, torch.Tensor]) -> StepOutput:
        x, y = batch
        self.seen += x.shape[0]
        err = (self.body(x).squeeze(-1) - y) ** 2
        return StepOutput(err.sum(), int(x.shape[0]), {"abs": (err.detach() ** 0.5).sum()})


class ToyTask(TrainTask):
    """y = sum of sines of x, with per-item noise drawn from (seed, epoch, index)."""

    name = "toy"
    fitness = "val/neg_mse"

    def __init__(self, n: int = 24, seed: int = 0) -> None:
        gen = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, 4, generator=gen)
        self.y = torch.sin(self.x).sum(-1)
        self.seed = seed

    def setup(self, ctx: DistContext) -> None:
        super().setup(ctx)
        torch.manual_seed(123)
        self.net = _Net().to(ctx.device)

    def module(self) -> nn.Module:
        return self.net

    def __len__(self) -> int:
        return len(self.x)

    def batch(self, indices: list[int], epoch: int) -> Any:
        noise = [np.random.default_rng([self.seed, epoch, i]).normal(0, 0.05) for i in indices]
        y = self.y[indices] + torch.tensor(noise, dtype=torch.float32)
        return self.x[indices].to(self.ctx.device), y.to(self.ctx.device)

    def validate(self, epoch: int) -> dict[str, float]:
        with torch.no_grad():
            mse = float(((self.net.body(self.x).squeeze(-1) - self.y) ** 2).mean())
        return {"val/neg_mse": -mse}

    def args(self) -> dict[str, Any]:
        return {"n": len(self.x)}


def run_toy(**kwargs: Any) -> None:
    """torchrun entry point: train the toy task with TrainConfig(**kwargs)."""
    fit(ToyTask(), TrainConfig(**kwargs))
