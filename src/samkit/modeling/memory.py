"""SAM 2's video modules: the memory encoder (a mask downsampler, a ConvNeXt fuser and the two
projections) and the memory attention (self-attention and cross-attention to the memory bank,
both with axial rotary position encoding).

Attribute names equal Meta's checkpoint keys under ``memory_encoder.`` and
``memory_attention.``. Tensors are batch-first: tokens (B, N, C) with N = h * w, row-major.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from samkit.modeling.common import LayerNorm2d
from samkit.modeling.fpn import sine_position_encoding

__all__ = [
    "CXBlock",
    "MaskDownSampler",
    "MemoryAttention",
    "MemoryAttentionLayer",
    "MemoryEncoder",
    "RoPEAttention",
    "axial_rope",
]


def axial_rope(
    dim: int, width: int, height: int, theta: float = 10000.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of the axial rotary angles of a (height, width) grid, each (h * w, dim / 2):
    the first dim / 4 channel pairs turn with the column, the next dim / 4 with the row."""
    freqs = 1.0 / (theta ** (torch.arange(0, dim, 4)[: dim // 4].float() / dim))
    t = torch.arange(width * height, dtype=torch.float32)
    t_x = t % width
    t_y = torch.div(t, width, rounding_mode="floor")
    angles = torch.cat([torch.outer(t_x, freqs), torch.outer(t_y, freqs)], dim=-1)
    return angles.cos(), angles.sin()


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x (..., N, D) as D / 2 pairs (x0, x1) -> (x0 c - x1 s, x0 s + x1 c), cos / sin (N, D / 2)."""
    pairs = x.float().reshape(*x.shape[:-1], -1, 2)
    x0, x1 = pairs[..., 0], pairs[..., 1]
    out = torch.stack((x0 * cos - x1 * sin, x0 * sin + x1 * cos), dim=-1)
    return out.flatten(-2).type_as(x)


class RoPEAttention(nn.Module):
    """Multi-head attention with axial rotary encoding of queries and keys (Meta's
    ``RoPEAttention``). ``kv_in_dim``: the width of keys / values (the memory's 64 in
    cross-attention). ``rope_k_repeat``: keys are several frames of the query's grid, each
    rotated like the queries; the last ``num_k_exclude_rope`` keys (object pointers) are not
    rotated."""

    def __init__(
        self,
        embedding_dim: int,
        num_heads: int,
        kv_in_dim: int | None = None,
        rope_theta: float = 10000.0,
        rope_k_repeat: bool = False,
    ) -> None:
        super().__init__()
        kv = kv_in_dim or embedding_dim
        self.num_heads = num_heads
        self.q_proj = nn.Linear(embedding_dim, embedding_dim)
        self.k_proj = nn.Linear(kv, embedding_dim)
        self.v_proj = nn.Linear(kv, embedding_dim)
        self.out_proj = nn.Linear(embedding_dim, embedding_dim)
        self.rope_theta = rope_theta
        self.rope_k_repeat = rope_k_repeat
        self._rope: dict[tuple[int, str], tuple[torch.Tensor, torch.Tensor]] = {}

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        return x.reshape(b, n, self.num_heads, c // self.num_heads).transpose(1, 2)

    def _cis(self, n: int, dim: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        key = (n, str(device))
        if key not in self._rope:
            side = math.isqrt(n)
            if side * side != n:
                raise ValueError(f"rotary attention needs a square grid of queries, got {n}")
            cos, sin = axial_rope(dim, side, side, self.rope_theta)
            self._rope[key] = (cos.to(device), sin.to(device))
        return self._rope[key]

    def forward(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, num_k_exclude_rope: int = 0
    ) -> torch.Tensor:
        """q (B, Nq, C), k / v (B, Nk, kv) -> (B, Nq, C); Nq a square grid."""
        q = self._heads(self.q_proj(q))
        k = self._heads(self.k_proj(k))
        v = self._heads(self.v_proj(v))
        n = q.shape[-2]
        cos, sin = self._cis(n, q.shape[-1], q.device)
        q = _rotate(q, cos, sin)
        num_rope = k.shape[-2] - num_k_exclude_rope
        if num_rope > 0:
            if num_rope != n and not self.rope_k_repeat:
                raise ValueError("keys of another length than the queries need rope_k_repeat")
            r = num_rope // n
            k_rot = _rotate(k[:, :, :num_rope], cos.repeat(r, 1), sin.repeat(r, 1))
            k = torch.cat([k_rot, k[:, :, num_rope:]], dim=2)
        out = F.scaled_dot_product_attention(q, k, v)
        b, h, nq, c = out.shape
        return self.out_proj(out.transpose(1, 2).reshape(b, nq, h * c))


class MemoryAttentionLayer(nn.Module):
    """Pre-norm self-attention, cross-attention to the memory (positions added to its keys
    only), ReLU feed-forward; each with a residual."""

    def __init__(
        self, d_model: int, mem_dim: int, dim_feedforward: int, num_heads: int = 1
    ) -> None:
        super().__init__()
        self.self_attn = RoPEAttention(d_model, num_heads)
        self.cross_attn_image = RoPEAttention(
            d_model, num_heads, kv_in_dim=mem_dim, rope_k_repeat=True
        )
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.norm3 = nn.LayerNorm(d_model)

    def forward(
        self,
        tgt: torch.Tensor,
        memory: torch.Tensor,
        memory_pos: torch.Tensor,
        num_k_exclude_rope: int = 0,
    ) -> torch.Tensor:
        """tgt (B, N, C), memory / memory_pos (B, M, mem_dim) -> (B, N, C)."""
        x = self.norm1(tgt)
        tgt = tgt + self.self_attn(x, x, x)
        x = self.norm2(tgt)
        tgt = tgt + self.cross_attn_image(x, memory + memory_pos, memory, num_k_exclude_rope)
        x = self.norm3(tgt)
        return tgt + self.linear2(F.relu(self.linear1(x)))


class MemoryAttention(nn.Module):
    """The current frame's tokens attend to the memory bank; the object pointers are the last
    ``num_obj_ptr_tokens`` memory tokens."""

    def __init__(
        self, d_model: int, mem_dim: int, num_layers: int, dim_feedforward: int = 2048
    ) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            MemoryAttentionLayer(d_model, mem_dim, dim_feedforward) for _ in range(num_layers)
        )
        self.norm = nn.LayerNorm(d_model)

    def forward(
        self,
        curr: torch.Tensor,
        curr_pos: torch.Tensor,
        memory: torch.Tensor,
        memory_pos: torch.Tensor,
        num_obj_ptr_tokens: int = 0,
    ) -> torch.Tensor:
        """curr / curr_pos (B, N, C); memory / memory_pos (B, M, mem_dim) -> (B, N, C)."""
        out = curr + 0.1 * curr_pos
        for layer in self.layers:
            out = layer(out, memory, memory_pos, num_obj_ptr_tokens)
        return self.norm(out)


class MaskDownSampler(nn.Module):
    """(B, 1, S, S) mask -> (B, C, S/16, S/16): four stride-2 3x3 convolutions (channels x4
    each) with LayerNorm2d and GELU, then a 1x1 projection."""

    def __init__(self, embed_dim: int = 256, num_layers: int = 4) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 1
        for _ in range(num_layers):
            c_out = c_in * 4
            layers += [nn.Conv2d(c_in, c_out, 3, 2, 1), LayerNorm2d(c_out), nn.GELU()]
            c_in = c_out
        layers.append(nn.Conv2d(c_in, embed_dim, kernel_size=1))
        self.encoder = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)


class CXBlock(nn.Module):
    """ConvNeXt block: depthwise 7x7, LayerNorm2d, pointwise MLP (GELU), layer scale, residual."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, kernel_size=7, padding=3, groups=dim)
        self.norm = LayerNorm2d(dim)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.pwconv2 = nn.Linear(4 * dim, dim)
        self.gamma = nn.Parameter(1e-6 * torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.norm(self.dwconv(x)).permute(0, 2, 3, 1)
        y = self.gamma * self.pwconv2(F.gelu(self.pwconv1(y)))
        return x + y.permute(0, 3, 1, 2)


class Fuser(nn.Module):
    """A stack of :class:`CXBlock`."""

    def __init__(self, dim: int, num_layers: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(CXBlock(dim) for _ in range(num_layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x


class MemoryEncoder(nn.Module):
    """A frame's features and its mask (already squashed: sigmoid or binary, scaled and
    shifted) -> one memory: features (B, out_dim, h, w) and their sine positions."""

    def __init__(self, in_dim: int = 256, out_dim: int = 64, fuser_layers: int = 2) -> None:
        super().__init__()
        self.mask_downsampler = MaskDownSampler(in_dim)
        self.pix_feat_proj = nn.Conv2d(in_dim, in_dim, kernel_size=1)
        self.fuser = Fuser(in_dim, fuser_layers)
        self.out_proj: nn.Module = (
            nn.Conv2d(in_dim, out_dim, kernel_size=1) if out_dim != in_dim else nn.Identity()
        )
        self.out_dim = out_dim

    def forward(
        self, pix_feat: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """pix_feat (B, C, h, w), mask (B, 1, 16h, 16w) -> features and positions, each
        (B, out_dim, h, w)."""
        x = self.pix_feat_proj(pix_feat) + self.mask_downsampler(mask)
        x = self.out_proj(self.fuser(x))
        size = (x.shape[-2], x.shape[-1])
        pos = sine_position_encoding(x.shape[0], size, self.out_dim, device=x.device)
        return x, pos.to(x.dtype)
