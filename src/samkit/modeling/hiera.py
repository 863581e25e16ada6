"""Hiera: the hierarchical ViT trunk of SAM 2 / SAM 2.1 (Ryali et al. 2023, "Hiera"; Bolya et al.
2023, "Window Attention is Bugged" for the windowed absolute position embedding).

Four stages of multi-scale blocks over a (B, H/4, W/4, C) channels-last token grid; the first
block of stages 2-4 halves the grid by max-pooling its queries and widens the channels
(``dim_mul``) and heads (``head_mul``). Attention is windowed except in ``global_att_blocks``.
The trunk returns the last block of every stage as (B, C_i, H_i, W_i), highest resolution first.
Attribute names equal Meta's checkpoint keys under ``image_encoder.trunk.``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from samkit.errors import ArgumentError
from samkit.sam2.config import HieraConfig


def _pool(x: torch.Tensor, pool: nn.Module | None) -> torch.Tensor:
    """Max-pool a channels-last grid (B, H, W, C) -> (B, H', W', C)."""
    if pool is None:
        return x
    return pool(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)


def window_partition(x: torch.Tensor, window: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """(B, H, W, C) -> (B * nW, window, window, C), zero-padding H and W up to multiples of
    ``window``; also returns the padded (Hp, Wp)."""
    b, h, w, c = x.shape
    pad_h, pad_w = (-h) % window, (-w) % window
    if pad_h or pad_w:
        x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))
    hp, wp = h + pad_h, w + pad_w
    x = x.view(b, hp // window, window, wp // window, window, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window, window, c), (hp, wp)


def window_unpartition(
    windows: torch.Tensor, window: int, padded: tuple[int, int], size: tuple[int, int]
) -> torch.Tensor:
    """Inverse of :func:`window_partition`: (B * nW, window, window, C) -> (B, H, W, C)."""
    hp, wp = padded
    h, w = size
    b = windows.shape[0] // (hp * wp // window // window)
    x = windows.reshape(b, hp // window, wp // window, window, window, -1)
    x = x.permute(0, 1, 3, 2, 4, 5).reshape(b, hp, wp, -1)
    if hp > h or wp > w:
        x = x[:, :h, :w, :]
    return x


class PatchEmbed(nn.Module):
    """7x7 stride-4 convolution: (B, 3, H, W) -> channels-last (B, H/4, W/4, C)."""

    def __init__(self, embed_dim: int, in_chans: int = 3) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=7, stride=4, padding=3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).permute(0, 2, 3, 1)


class HieraMLP(nn.Module):
    """Two linear layers with GELU between them (keys ``layers.0`` / ``layers.1``)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(dim, hidden), nn.Linear(hidden, dim)])
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers[1](self.act(self.layers[0](x)))


class MultiScaleAttention(nn.Module):
    """Self-attention on a channels-last grid, with optional query pooling (stage changes)."""

    def __init__(
        self, dim: int, dim_out: int, num_heads: int, q_pool: nn.Module | None = None
    ) -> None:
        super().__init__()
        self.dim_out = dim_out
        self.num_heads = num_heads
        self.q_pool = q_pool
        self.qkv = nn.Linear(dim, dim_out * 3)
        self.proj = nn.Linear(dim_out, dim_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, H, W, C) -> (B, H', W', dim_out); H' = H / stride with query pooling."""
        b, h, w, _ = x.shape
        q, k, v = self.qkv(x).reshape(b, h * w, 3, self.num_heads, -1).unbind(2)
        if self.q_pool is not None:
            q = _pool(q.reshape(b, h, w, -1), self.q_pool)
            h, w = q.shape[1:3]
            q = q.reshape(b, h * w, self.num_heads, -1)
        out = F.scaled_dot_product_attention(
            q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        )
        return self.proj(out.transpose(1, 2).reshape(b, h, w, -1))


class MultiScaleBlock(nn.Module):
    """Pre-norm block: (windowed) attention with optional query pooling, then an MLP."""

    def __init__(
        self,
        dim: int,
        dim_out: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        q_stride: tuple[int, int] | None = None,
        window_size: int = 0,
    ) -> None:
        super().__init__()
        self.dim, self.dim_out = dim, dim_out
        self.window_size = window_size
        self.q_stride = q_stride
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.pool = nn.MaxPool2d(kernel_size=q_stride, stride=q_stride) if q_stride else None
        self.attn = MultiScaleAttention(dim, dim_out, num_heads, q_pool=self.pool)
        self.norm2 = nn.LayerNorm(dim_out, eps=1e-6)
        self.mlp = HieraMLP(dim_out, int(dim_out * mlp_ratio))
        if dim != dim_out:
            self.proj = nn.Linear(dim, dim_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, H, W, dim) -> (B, H', W', dim_out)."""
        shortcut = x
        x = self.norm1(x)
        if self.dim != self.dim_out:
            shortcut = _pool(self.proj(x), self.pool)
        window = self.window_size
        h, w = x.shape[1:3]
        padded = (h, w)
        if window > 0:
            x, padded = window_partition(x, window)
        x = self.attn(x)
        if self.q_stride:  # the grid shrank: so did the windows
            window = self.window_size // self.q_stride[0]
            h, w = shortcut.shape[1:3]
            padded = (h + (-h) % window, w + (-w) % window) if window > 0 else (h, w)
        if self.window_size > 0:
            x = window_unpartition(x, window, padded, (h, w))
        x = shortcut + x
        return x + self.mlp(self.norm2(x))


class Hiera(nn.Module):
    """The trunk: (B, 3, S, S) normalised image -> one feature map per stage, (B, C_i, S/4/2^i,
    S/4/2^i) for i = 0..3 (highest resolution first)."""

    def __init__(self, config: HieraConfig) -> None:
        super().__init__()
        c = config
        if len(c.stages) != len(c.window_spec):
            raise ArgumentError(
                f"stages {c.stages} and window_spec {c.window_spec} must have equal length"
            )
        if not 0 <= c.q_pool <= len(c.stages) - 1:
            raise ArgumentError(f"q_pool must be in [0, {len(c.stages) - 1}], got {c.q_pool}")
        self.config = c
        self.stage_ends = [sum(c.stages[: i + 1]) - 1 for i in range(len(c.stages))]
        q_pool_blocks = [end + 1 for end in self.stage_ends[:-1]][: c.q_pool]
        self.patch_embed = PatchEmbed(c.embed_dim)
        self.pos_embed = nn.Parameter(
            torch.zeros(1, c.embed_dim, *c.window_pos_embed_bkg_spatial_size)
        )
        self.pos_embed_window = nn.Parameter(
            torch.zeros(1, c.embed_dim, c.window_spec[0], c.window_spec[0])
        )
        self.blocks = nn.ModuleList()
        dim, heads, stage = c.embed_dim, c.num_heads, 0
        for i in range(sum(c.stages)):
            # The window size lags one block behind the stage: a stage's first block (which
            # pools) still uses the previous stage's window.
            window = 0 if i in c.global_att_blocks else c.window_spec[stage]
            dim_out = dim
            if i - 1 in self.stage_ends:
                dim_out = int(dim * c.dim_mul)
                heads = int(heads * c.head_mul)
                stage += 1
            self.blocks.append(
                MultiScaleBlock(
                    dim,
                    dim_out,
                    heads,
                    mlp_ratio=c.mlp_ratio,
                    q_stride=c.q_stride if i in q_pool_blocks else None,
                    window_size=window,
                )
            )
            dim = dim_out
        self.channel_list: list[int] = list(c.channel_list)

    def _pos_embed(self, hw: tuple[int, int]) -> torch.Tensor:
        """Background embedding resized (bicubic) to the grid plus the tiled window embedding,
        channels-last (1, h, w, C)."""
        pos = F.interpolate(self.pos_embed, size=hw, mode="bicubic")
        window = self.pos_embed_window
        reps = [a // b for a, b in zip(pos.shape, window.shape, strict=True)]
        return (pos + window.tile(reps)).permute(0, 2, 3, 1)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.patch_embed(x)
        x = x + self._pos_embed((int(x.shape[1]), int(x.shape[2])))
        outputs = []
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i in self.stage_ends:
                outputs.append(x.permute(0, 3, 1, 2))
        return outputs
