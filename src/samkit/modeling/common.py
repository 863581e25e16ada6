"""Small building blocks shared by the encoders and the decoder."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def inplace_ok(x: torch.Tensor) -> bool:
    """True when ``x`` may be overwritten by an activation: autograd does not need it and no
    tracer is recording (the export path keeps the plain, out-of-place graph)."""
    if torch.jit.is_tracing():
        return False
    return torch.is_inference_mode_enabled() or not (torch.is_grad_enabled() and x.requires_grad)


def act_(act: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``act(x)``, computed in place on a freshly produced ``x`` where allowed.

    Large activations dominate the convolutional stages' time on CPU through allocation and
    page faults, not arithmetic; in place, they cost a quarter as much. Same values.
    """
    if inplace_ok(x):
        if isinstance(act, nn.GELU) and act.approximate == "none":
            return torch.ops.aten.gelu_(x)
        if isinstance(act, nn.ReLU):
            return x.relu_()
    return act(x)


class LayerNorm2d(nn.Module):
    """LayerNorm over the channel axis of a (B, C, H, W) tensor."""

    def __init__(self, num_channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(num_channels))
        self.bias = nn.Parameter(torch.zeros(num_channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(1, keepdim=True)
        var = (x - mean).pow(2).mean(1, keepdim=True)
        x = (x - mean) / torch.sqrt(var + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


class MLPBlock(nn.Module):
    """Two-layer feed-forward block: lin1 -> act -> lin2."""

    def __init__(self, embedding_dim: int, mlp_dim: int, act: type[nn.Module] = nn.GELU) -> None:
        super().__init__()
        self.lin1 = nn.Linear(embedding_dim, mlp_dim)
        self.lin2 = nn.Linear(mlp_dim, embedding_dim)
        self.act = act()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin2(act_(self.act, self.lin1(x)))


class MLP(nn.Module):
    """``num_layers`` linear layers with ReLU between them (decoder heads)."""

    def __init__(
        self,
        input_dim: int,
        hidden_dim: int,
        output_dim: int,
        num_layers: int,
        sigmoid_output: bool = False,
    ) -> None:
        super().__init__()
        dims_in = [input_dim] + [hidden_dim] * (num_layers - 1)
        dims_out = [hidden_dim] * (num_layers - 1) + [output_dim]
        self.layers = nn.ModuleList(nn.Linear(i, o) for i, o in zip(dims_in, dims_out, strict=True))
        self.sigmoid_output = sigmoid_output

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < last:
                x = F.relu(x)
        return torch.sigmoid(x) if self.sigmoid_output else x
