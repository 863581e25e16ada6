"""RepViT image encoders of RepViT-SAM and EdgeSAM (:class:`~samkit.zoo.configs.RepViTConfig`),
with the official checkpoints' module names (``features.<i>.token_mixer`` / ``channel_mixer``,
``fuse_stage2`` / ``fuse_stage3``, ``neck``) so their files load as they are.

Maths: every conv unit is Conv2d (no bias) + BatchNorm2d (eps 1e-5). Stem: 3x3 stride-2 unit,
GELU, 3x3 stride-2 unit. A block is ``y = mixer(x)``, ``out = y + mlp(y)`` with ``mlp`` a 1x1
unit to twice the width, GELU (exact) and a 1x1 unit back. Its token mixer is, for a plain
block, ``x + dw3x3(x) + dw1x1(x)`` (the re-parameterisable RepVGG form) and, for a downsample
block, a strided depthwise unit followed by a 1x1 unit to the new width; both optionally
followed by squeeze-excite ``x * sigmoid(fc2(relu(fc1(mean_hw(x)))))`` (timm's
``SqueezeExcite(c, 0.25)``). Neck as SAM's: 1x1 conv, LayerNorm2d, 3x3 conv, LayerNorm2d; with
the FPN (EdgeSAM) its input is ``conv1x1(stride-16 stage) + bicubic2x(conv1x1(last stage))``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from samkit.modeling.common import LayerNorm2d
from samkit.zoo.configs import RepViTConfig

__all__ = ["RepViTImageEncoder"]


class ConvBN(nn.Sequential):
    """Conv2d without bias (``c``) then BatchNorm2d (``bn``)."""

    def __init__(
        self, c_in: int, c_out: int, kernel: int = 1, stride: int = 1, groups: int = 1
    ) -> None:
        super().__init__()
        self.c = nn.Conv2d(
            c_in, c_out, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False
        )
        self.bn = nn.BatchNorm2d(c_out)


class SqueezeExcite(nn.Module):
    """timm's ``SqueezeExcite(channels, 0.25)``: reduced width rounded to a multiple of 8."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        reduced = max(8, int(channels * 0.25 + 4) // 8 * 8)
        self.fc1 = nn.Conv2d(channels, reduced, 1)
        self.fc2 = nn.Conv2d(reduced, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.fc2(F.relu(self.fc1(x.mean((2, 3), keepdim=True))))
        return x * torch.sigmoid(s)


class RepVGGDW(nn.Module):
    """``x + dw3x3(x) + dw1x1(x)``, each a conv + BN (EdgeSAM); with ``norm_after_sum``
    (RepViT-SAM) the 1x1 is a biased conv and one BN follows the sum."""

    def __init__(self, channels: int, norm_after_sum: bool) -> None:
        super().__init__()
        self.conv = ConvBN(channels, channels, 3, groups=channels)
        self.conv1: nn.Module
        if norm_after_sum:
            self.conv1 = nn.Conv2d(channels, channels, 1, groups=channels)
            self.bn: nn.Module | None = nn.BatchNorm2d(channels)
        else:
            self.conv1 = ConvBN(channels, channels, 1, groups=channels)
            self.bn = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x) + self.conv1(x) + x
        return y if self.bn is None else self.bn(y)


class Residual(nn.Module):
    def __init__(self, m: nn.Module) -> None:
        super().__init__()
        self.m = m

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.m(x)


class RepViTBlock(nn.Module):
    def __init__(
        self, c_in: int, c_out: int, stride: int, se: bool, downsample: bool, norm_after: bool
    ) -> None:
        super().__init__()
        excite: nn.Module = SqueezeExcite(c_in) if se else nn.Identity()
        if downsample:
            dw = ConvBN(c_in, c_in, 3, stride, groups=c_in)
            self.token_mixer = nn.Sequential(dw, excite, ConvBN(c_in, c_out, 1))
        else:
            self.token_mixer = nn.Sequential(RepVGGDW(c_in, norm_after), excite)
        mlp = nn.Sequential(ConvBN(c_out, 2 * c_out), nn.GELU(), ConvBN(2 * c_out, c_out))
        self.channel_mixer = Residual(mlp)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.channel_mixer(self.token_mixer(x))


class Upsample2x(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=2.0, mode="bicubic", align_corners=False)


class OpSequential(nn.Module):
    def __init__(self, ops: list[nn.Module]) -> None:
        super().__init__()
        self.op_list = nn.ModuleList(ops)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for op in self.op_list:
            x = op(x)
        return x


class RepViTImageEncoder(nn.Module):
    """(B, 3, S, S) normalised, padded image -> (B, 256, S/16, S/16)."""

    def __init__(self, config: RepViTConfig) -> None:
        super().__init__()
        self.config = config
        self.img_size = config.img_size
        w0 = config.widths[0]
        stem = nn.Sequential(ConvBN(3, w0 // 2, 3, 2), nn.GELU(), ConvBN(w0 // 2, w0, 3, 2))
        layers: list[nn.Module] = [stem]
        c_in = w0
        for width, se, down, stride in zip(
            config.widths, config.se, config.downsample, config.strides(), strict=True
        ):
            layers.append(RepViTBlock(c_in, width, stride, se, down, config.dw_norm_after_sum))
            c_in = width
        self.features = nn.ModuleList(layers)
        # With the FPN: the last block before the final downsample gives the stride-16 map.
        self.fpn_index = 1 + max(i for i, d in enumerate(config.downsample) if d) - 1
        neck_in = c_in
        if config.fpn:
            c16 = config.widths[self.fpn_index - 1]
            self.fuse_stage2 = nn.Conv2d(c16, 256, 1, bias=False)
            self.fuse_stage3 = OpSequential([nn.Conv2d(c_in, 256, 1, bias=False), Upsample2x()])
            neck_in = 256
        self.neck = nn.Sequential(
            nn.Conv2d(neck_in, config.out_chans, 1, bias=False),
            LayerNorm2d(config.out_chans),
            nn.Conv2d(config.out_chans, config.out_chans, 3, padding=1, bias=False),
            LayerNorm2d(config.out_chans),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        stage16 = None
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i == self.fpn_index:
                stage16 = x
        if self.config.fpn:
            assert stage16 is not None  # fpn_index is always within the features
            x = self.fuse_stage2(stage16) + self.fuse_stage3(x)
        return self.neck(x)
