"""TinyViT image encoder of MobileSAM.

Stages: a convolutional patch embedding (/4), one MBConv stage, then windowed-attention
stages joined by patch merging. The last merge keeps the resolution so that a 1024 input ends
on the 64x64 grid SAM's decoder expects. A neck maps to 256 channels as in SAM.
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import nn

from samkit.modeling.common import LayerNorm2d, act_
from samkit.modeling.tiny_vit_conv import Conv2d_BN, ConvLayer, MBConv, PatchEmbed, PatchMerging
from samkit.registry import TinyViTConfig

__all__ = ["Attention", "Conv2d_BN", "MBConv", "TinyViT"]


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(act_(self.act, self.fc1(self.norm(x))))


def attention_bias_index(window: int) -> tuple[torch.Tensor, int]:
    """(w*w, w*w) index of the learned bias for each pair of positions in a window, and the
    number of distinct offsets. Offsets are (|dy|, |dx|) numbered in order of first appearance.
    """
    points = list(itertools.product(range(window), range(window)))
    offsets: dict[tuple[int, int], int] = {}
    idxs = []
    for p1 in points:
        for p2 in points:
            off = (abs(p1[0] - p2[0]), abs(p1[1] - p2[1]))
            idxs.append(offsets.setdefault(off, len(offsets)))
    n = len(points)
    return torch.tensor(idxs, dtype=torch.long).view(n, n), len(offsets)


class Attention(nn.Module):
    """Window attention with a learned per-offset bias. Input (B, N, C), N = window**2.

    The qkv projection is laid out per head as [q | k | v] (head-interleaved). ``fused``: on
    CPU, batched matrix products over contiguous per-head q / k / v with the bias added in
    place (torch's fused attention takes a float mask through its slow generic path there,
    2-4x slower for these small windows); elsewhere scaled_dot_product_attention. The plain
    path spells out the reference's arithmetic.
    """

    fused: bool = True
    attention_bias_idxs: torch.Tensor

    def __init__(self, dim: int, num_heads: int, window: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.key_dim = dim // num_heads
        self.scale = self.key_dim**-0.5
        self.norm = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        index, n_offsets = attention_bias_index(window)
        self.attention_biases = nn.Parameter(torch.zeros(num_heads, n_offsets))
        self.register_buffer("attention_bias_idxs", index, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        h, d = self.num_heads, self.key_dim
        qkv = self.qkv(self.norm(x))
        bias = self.attention_biases[:, self.attention_bias_idxs]  # (heads, N, N)
        if self.fused and x.device.type == "cpu" and not torch.jit.is_tracing():
            # (B, N, heads, 3, d) -> (3, B * heads, N, d), one copy; k^T is a free view.
            q, k, v = qkv.view(b, n, h, 3, d).permute(3, 0, 2, 1, 4).reshape(3, b * h, n, d)
            # beta=0: the input is ignored; alpha scales the product with no extra pass.
            attn = torch.baddbmm(q.new_zeros(()), q, k.transpose(1, 2), beta=0, alpha=self.scale)
            attn.view(b, h, n, n).add_(bias.to(attn.dtype))
            out = torch.bmm(attn.softmax(dim=-1), v).view(b, h, n, d)
        else:
            q, k, v = qkv.view(b, n, h, 3 * d).permute(0, 2, 1, 3).split(d, dim=3)
            if self.fused:
                out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype))
            else:
                attn = (q @ k.transpose(-2, -1)) * self.scale + bias
                out = attn.softmax(dim=-1) @ v
        return self.proj(out.transpose(1, 2).reshape(b, n, -1))


class TinyViTBlock(nn.Module):
    def __init__(
        self,
        dim: int,
        resolution: tuple[int, int],
        num_heads: int,
        window: int,
        mlp_ratio: float,
        local_conv_size: int,
    ) -> None:
        super().__init__()
        self.resolution = resolution
        self.window = window
        self.attn = Attention(dim, num_heads, window)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.local_conv = Conv2d_BN(dim, dim, local_conv_size, 1, local_conv_size // 2, groups=dim)

    def _windowed_attention(self, x: torch.Tensor) -> torch.Tensor:
        h, w = self.resolution
        b, _, c = x.shape
        ws = self.window
        if h == ws and w == ws:
            return self.attn(x)
        grid = x.view(b, h, w, c)
        pad_b, pad_r = (ws - h % ws) % ws, (ws - w % ws) % ws
        if pad_b or pad_r:
            grid = F.pad(grid, (0, 0, 0, pad_r, 0, pad_b))
        ph, pw = h + pad_b, w + pad_r
        nh, nw = ph // ws, pw // ws
        windows = grid.view(b, nh, ws, nw, ws, c).transpose(2, 3).reshape(b * nh * nw, ws * ws, c)
        out = self.attn(windows).view(b, nh, nw, ws, ws, c).transpose(2, 3).reshape(b, ph, pw, c)
        if pad_b or pad_r:
            out = out[:, :h, :w].contiguous()
        return out.view(b, h * w, c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = self.resolution
        b, n, c = x.shape
        x = x + self._windowed_attention(x)
        # Channels-last views on both sides: no layout copies around the depthwise conv.
        x = self.local_conv(x.view(b, h, w, c).permute(0, 3, 1, 2))
        x = x.permute(0, 2, 3, 1).reshape(b, n, c)
        return x + self.mlp(x)


class BasicLayer(nn.Module):
    def __init__(
        self,
        dim: int,
        resolution: tuple[int, int],
        depth: int,
        num_heads: int,
        window: int,
        mlp_ratio: float,
        local_conv_size: int,
        downsample: PatchMerging | None,
    ) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            TinyViTBlock(dim, resolution, num_heads, window, mlp_ratio, local_conv_size)
            for _ in range(depth)
        )
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return x if self.downsample is None else self.downsample(x)


class TinyViT(nn.Module):
    """(B, 3, S, S) normalised, padded image -> (B, out_chans, S/16, S/16) embedding.

    :meth:`fuse` folds every batch norm for inference (see :class:`Conv2d_BN`)."""

    def __init__(self, config: TinyViTConfig) -> None:
        super().__init__()
        self.config = config
        self.img_size = config.img_size
        dims, n_stages = config.embed_dims, len(config.depths)
        self.patch_embed = PatchEmbed(3, dims[0])
        side = config.img_size // 4
        # Stage resolutions halve at each merge except the last merge, which keeps the grid.
        sides = [side // 2 ** min(i, n_stages - 2) for i in range(n_stages)]
        self.final_side = sides[-1]
        self.layers = nn.ModuleList()
        for i in range(n_stages):
            res = (sides[i], sides[i])
            merge = None
            if i < n_stages - 1:
                stride = 2 if sides[i + 1] < sides[i] else 1
                merge = PatchMerging(res, dims[i], dims[i + 1], stride)
            layer: nn.Module
            if i == 0:
                layer = ConvLayer(dims[0], config.depths[0], config.mbconv_expand_ratio, merge)
            else:
                layer = BasicLayer(
                    dims[i],
                    res,
                    config.depths[i],
                    config.num_heads[i],
                    config.window_sizes[i],
                    config.mlp_ratio,
                    config.local_conv_size,
                    merge,
                )
            self.layers.append(layer)
        self.neck = nn.Sequential(
            nn.Conv2d(dims[-1], config.out_chans, kernel_size=1, bias=False),
            LayerNorm2d(config.out_chans),
            nn.Conv2d(config.out_chans, config.out_chans, kernel_size=3, padding=1, bias=False),
            LayerNorm2d(config.out_chans),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.jit.is_tracing():
            # Channels-last: depthwise and 1x1 convolutions run several times faster on CPU.
            x = x.contiguous(memory_format=torch.channels_last)
        x = self.patch_embed(x)
        for layer in self.layers:
            x = layer(x)
        b, _, c = x.shape
        side = self.final_side
        return self.neck(x.view(b, side, side, c).permute(0, 3, 1, 2)).contiguous()

    def fuse(self) -> None:
        """Fold all batch norms into their convolutions (eval mode); idempotent and cheap."""
        for module in self.modules():
            if isinstance(module, Conv2d_BN):
                module.fuse()
