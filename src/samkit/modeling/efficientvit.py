"""EfficientViT-SAM's image encoder (Cai et al., mit-han-lab/efficientvit): the EfficientViT
"large" backbone, SamNeck and a final LayerNorm2d, with the official checkpoint's module names
(``backbone.stages.<s>.op_list.<i>...``, ``neck.input_ops`` / ``middle`` / ``output_ops``,
``norm``) so its files load as they are.

Maths, per module (what the parity test re-checks):

- conv unit: Conv2d (padding k // 2) -> BatchNorm2d (optional) -> GELU (tanh approximation,
  optional); every norm has eps ``config.norm_eps`` (1e-6 in the published models);
- ResBlock: 3x3 conv -> 3x3 conv; FusedMBConv: 3x3 conv (expand) -> 1x1 conv; MBConv: 1x1
  (expand) -> 3x3 depthwise -> 1x1; with "fewer norm" the expanding convs have a bias and no
  norm. Stage 0 is a stride-2 conv unit and ResBlocks; every later stage opens with a stride-2
  block without shortcut, then blocks with an identity shortcut;
- EfficientViT block: x + LiteMLA(x), then x + MBConv(x). LiteMLA: 1x1 conv to q, k, v (heads of
  ``qkv_dim``), multi-scale aggregation (depthwise ``s x s`` + grouped 1x1 conv) concatenated to
  the heads, ReLU linear attention per head ``out = (v k^T) relu(q) / ((1 k^T) relu(q) +
  1e-15)`` with k = relu(k), then a 1x1 conv + BN;
- neck: for each of three stages a 1x1 conv + BN, bicubic resize to 64x64 (align_corners
  False), summed (deepest stage first), FusedMBConv blocks with identity shortcuts, a 1x1 conv
  with bias to 256 channels; then LayerNorm2d.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from samkit.modeling.common import LayerNorm2d
from samkit.zoo.configs import EfficientViTConfig

__all__ = ["EfficientViTImageEncoder"]


def _gelu() -> nn.Module:
    return nn.GELU(approximate="tanh")


class ConvLayer(nn.Module):
    """Conv2d -> optional BatchNorm2d -> optional GELU (tanh)."""

    def __init__(
        self,
        c_in: int,
        c_out: int,
        kernel: int = 3,
        stride: int = 1,
        *,
        groups: int = 1,
        bias: bool = False,
        norm: bool = True,
        act: bool = False,
        eps: float = 1e-6,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, groups=groups, bias=bias)
        self.norm = nn.BatchNorm2d(c_out, eps=eps) if norm else None
        self.act = _gelu() if act else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if self.norm is not None:
            x = self.norm(x)
        return x if self.act is None else self.act(x)


class OpSequential(nn.Module):
    """Modules applied in order (the checkpoint's ``op_list``)."""

    def __init__(self, ops: list[nn.Module]) -> None:
        super().__init__()
        self.op_list = nn.ModuleList(ops)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for op in self.op_list:
            x = op(x)
        return x


class ResidualBlock(nn.Module):
    """``main(x) + x`` with ``shortcut``, else ``main(x)``."""

    def __init__(self, main: nn.Module, shortcut: bool) -> None:
        super().__init__()
        self.main = main
        self.shortcut = nn.Identity() if shortcut else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x) if self.shortcut is None else self.main(x) + x


class ResBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int, expand: float, fewer: bool, eps: float):
        super().__init__()
        mid = round(c_in * expand)
        self.conv1 = ConvLayer(c_in, mid, 3, stride, bias=fewer, norm=not fewer, act=True, eps=eps)
        self.conv2 = ConvLayer(mid, c_out, 3, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.conv1(x))


class FusedMBConv(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int, expand: float, fewer: bool, eps: float):
        super().__init__()
        mid = round(c_in * expand)
        self.spatial_conv = ConvLayer(
            c_in, mid, 3, stride, bias=fewer, norm=not fewer, act=True, eps=eps
        )
        self.point_conv = ConvLayer(mid, c_out, 1, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.point_conv(self.spatial_conv(x))


class MBConv(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int, expand: float, fewer: bool, eps: float):
        super().__init__()
        mid = round(c_in * expand)
        kw = {"bias": fewer, "norm": not fewer, "act": True, "eps": eps}
        self.inverted_conv = ConvLayer(c_in, mid, 1, **kw)  # type: ignore[arg-type]
        self.depth_conv = ConvLayer(mid, mid, 3, stride, groups=mid, **kw)  # type: ignore[arg-type]
        self.point_conv = ConvLayer(mid, c_out, 1, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.point_conv(self.depth_conv(self.inverted_conv(x)))


_LOCAL = {"res": ResBlock, "fmb": FusedMBConv, "mb": MBConv}


class LiteMLA(nn.Module):
    """Multi-scale ReLU linear attention over a (B, C, H, W) map (see the module docstring)."""

    def __init__(self, channels: int, dim: int, scales: tuple[int, ...], eps: float) -> None:
        super().__init__()
        heads = channels // dim
        total = heads * dim
        self.dim = dim
        self.qkv = ConvLayer(channels, 3 * total, 1, norm=False, eps=eps)
        self.aggreg = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(3 * total, 3 * total, s, padding=s // 2, groups=3 * total, bias=False),
                nn.Conv2d(3 * total, 3 * total, 1, groups=3 * heads, bias=False),
            )
            for s in scales
        )
        self.proj = ConvLayer(total * (1 + len(scales)), channels, 1, eps=eps)

    def attend(self, qkv: torch.Tensor) -> torch.Tensor:
        """(B, 3 * heads * dim, H, W) -> (B, heads * dim, H, W), linear attention per head."""
        b, _, h, w = qkv.shape
        qkv = qkv.float().reshape(b, -1, 3 * self.dim, h * w)
        d = self.dim
        q, k, v = F.relu(qkv[:, :, :d]), F.relu(qkv[:, :, d : 2 * d]), qkv[:, :, 2 * d :]
        v = F.pad(v, (0, 0, 0, 1), value=1.0)  # a row of ones gives the normaliser
        out = (v @ k.transpose(-1, -2)) @ q
        out = out[:, :, :-1] / (out[:, :, -1:] + 1e-15)
        return out.reshape(b, -1, h, w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        qkv = self.qkv(x)
        qkv = torch.cat([qkv, *(op(qkv) for op in self.aggreg)], dim=1)
        return self.proj(self.attend(qkv).to(x.dtype))


class EfficientViTBlock(nn.Module):
    def __init__(self, channels: int, dim: int, expand: float, scales: tuple[int, ...], eps: float):
        super().__init__()
        self.context_module = ResidualBlock(LiteMLA(channels, dim, scales, eps), shortcut=True)
        self.local_module = ResidualBlock(
            MBConv(channels, channels, 1, expand, fewer=True, eps=eps), shortcut=True
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.local_module(self.context_module(x))


class EfficientViTBackbone(nn.Module):
    """The "large" backbone: ``forward`` returns every stage's output, stage 0 first."""

    def __init__(self, c: EfficientViTConfig) -> None:
        super().__init__()
        eps = c.norm_eps
        w0 = c.width_list[0]
        first: list[nn.Module] = [ConvLayer(3, w0, 3, 2, act=True, eps=eps)]
        for _ in range(c.depth_list[0]):
            block = _LOCAL[c.block_list[0]](w0, w0, 1, c.expand_list[0], c.fewer_norm_list[0], eps)
            first.append(ResidualBlock(block, shortcut=True))
        stages = [OpSequential(first)]
        c_in = w0
        for s in range(1, len(c.width_list)):
            kind, width, fewer = c.block_list[s], c.width_list[s], c.fewer_norm_list[s]
            down = _LOCAL[kind if kind in ("mb", "fmb") else "mb"]
            ops: list[nn.Module] = [
                ResidualBlock(down(c_in, width, 2, c.expand_list[s] * 4, fewer, eps), False)
            ]
            for _ in range(c.depth_list[s]):
                if kind.startswith("att"):
                    scales = (3,) if kind == "att@3" else (5,)
                    ops.append(EfficientViTBlock(width, c.qkv_dim, c.expand_list[s], scales, eps))
                else:
                    block = _LOCAL[kind](width, width, 1, c.expand_list[s], fewer, eps)
                    ops.append(ResidualBlock(block, shortcut=True))
            stages.append(OpSequential(ops))
            c_in = width
        self.stages = nn.ModuleList(stages)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outputs = []
        for stage in self.stages:
            x = stage(x)
            outputs.append(x)
        return outputs


class Upsample64(nn.Module):
    """Bicubic resize to 64x64 (align_corners False); identity when already 64x64."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[-2:]) == (64, 64):
            return x
        return F.interpolate(x.float(), size=(64, 64), mode="bicubic", align_corners=False).to(
            x.dtype
        )


class SamNeck(nn.Module):
    def __init__(self, c: EfficientViTConfig) -> None:
        super().__init__()
        eps, hw = c.norm_eps, c.head_width
        self.stage_ids = tuple(c.neck_stages)
        self.input_ops = nn.ModuleList(
            OpSequential([ConvLayer(c.width_list[s], hw, 1, eps=eps), Upsample64()])
            for s in self.stage_ids
        )
        self.middle = OpSequential(
            [
                ResidualBlock(FusedMBConv(hw, hw, 1, c.neck_expand, False, eps), shortcut=True)
                for _ in range(c.head_depth)
            ]
        )
        self.output_ops = nn.ModuleList(
            [OpSequential([ConvLayer(hw, c.out_chans, 1, bias=True, norm=False)])]
        )

    def forward(self, stages: list[torch.Tensor]) -> torch.Tensor:
        feats = [op(stages[s]) for s, op in zip(self.stage_ids, self.input_ops, strict=True)]
        x = feats[0]
        for f in feats[1:]:
            x = x + f
        return self.output_ops[0](self.middle(x))


class EfficientViTImageEncoder(nn.Module):
    """(B, 3, S, S) normalised, padded image (S = ``config.img_size``) -> (B, 256, 64, 64)."""

    def __init__(self, config: EfficientViTConfig) -> None:
        super().__init__()
        self.config = config
        self.img_size = config.img_size
        self.backbone = EfficientViTBackbone(config)
        self.neck = SamNeck(config)
        self.norm = LayerNorm2d(config.out_chans, eps=config.norm_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.neck(self.backbone(x)))
