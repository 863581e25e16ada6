"""TinyViT's convolutional pieces: Conv2d + batch norm (foldable for inference), the patch
embedding, the MBConv stage (run a band of rows at a time on CPU) and patch merging.

Module attribute names equal the official checkpoint keys.
"""

from __future__ import annotations

import functools
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from samkit.modeling import parallel
from samkit.modeling.common import act_, inplace_ok


class Conv2d_BN(nn.Sequential):
    """Convolution without bias followed by batch norm (keys ``c.*`` and ``bn.*``).

    :meth:`fuse` folds the batch norm into one convolution for inference; the folded weights
    are non-persistent buffers (the state dict keeps the official keys) and are dropped by
    ``train()`` and by loading a state dict, so training still sees the two layers.
    """

    fused_weight: torch.Tensor | None
    fused_bias: torch.Tensor | None

    def __init__(
        self,
        in_chans: int,
        out_chans: int,
        kernel_size: int = 1,
        stride: int = 1,
        padding: int = 0,
        groups: int = 1,
    ) -> None:
        super().__init__()
        self.add_module(
            "c",
            nn.Conv2d(in_chans, out_chans, kernel_size, stride, padding, groups=groups, bias=False),
        )
        self.add_module("bn", nn.BatchNorm2d(out_chans))
        self.register_buffer("fused_weight", None, persistent=False)
        self.register_buffer("fused_bias", None, persistent=False)

    @torch.no_grad()
    def fuse(self) -> None:
        """Fold the batch norm's running statistics into the convolution (eval mode only)."""
        if self.training:
            raise RuntimeError(
                "fuse() needs eval mode (batch norm uses batch statistics in training)"
            )
        conv, bn = self.c, self.bn
        if not isinstance(conv, nn.Conv2d) or not isinstance(bn, nn.BatchNorm2d):
            raise TypeError("unexpected Conv2d_BN layout")
        if bn.running_var is None or bn.running_mean is None:
            raise RuntimeError("batch norm without running statistics cannot be folded")
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        self.fused_weight = (conv.weight * scale[:, None, None, None]).detach().clone()
        self.fused_bias = (bn.bias - bn.running_mean * scale).detach().clone()

    def unfuse(self) -> None:
        """Drop the folded weights (after editing the layers' parameters in place)."""
        self.fused_weight = None
        self.fused_bias = None

    def train(self, mode: bool = True) -> Conv2d_BN:
        if mode:
            self.unfuse()
        return super().train(mode)

    def _load_from_state_dict(self, *args: Any, **kwargs: Any) -> None:
        self.unfuse()
        super()._load_from_state_dict(*args, **kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv = self.c
        if self.fused_weight is not None and not self.training and isinstance(conv, nn.Conv2d):
            if (
                conv.kernel_size == (1, 1)
                and conv.stride == (1, 1)
                and conv.groups == 1
                and x.is_contiguous(memory_format=torch.channels_last)
            ):
                # A 1x1 convolution on channels-last data is one matrix product per pixel.
                weight = self.fused_weight.flatten(1)
                return F.linear(x.permute(0, 2, 3, 1), weight, self.fused_bias).permute(0, 3, 1, 2)
            return F.conv2d(
                x,
                self.fused_weight,
                self.fused_bias,
                conv.stride,
                conv.padding,
                conv.dilation,
                conv.groups,
            )
        return super().forward(x)


class PatchEmbed(nn.Module):
    def __init__(self, in_chans: int, embed_dim: int) -> None:
        super().__init__()
        self.seq = nn.Sequential(
            Conv2d_BN(in_chans, embed_dim // 2, 3, 2, 1),
            nn.GELU(),
            Conv2d_BN(embed_dim // 2, embed_dim, 3, 2, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv1, act, conv2 = self.seq
        return conv2(act_(act, conv1(x)))


class MBConv(nn.Module):
    """Inverted residual block on (B, C, H, W)."""

    def __init__(self, chans: int, expand_ratio: float) -> None:
        super().__init__()
        hidden = int(chans * expand_ratio)
        self.conv1 = Conv2d_BN(chans, hidden, 1)
        self.act1 = nn.GELU()
        self.conv2 = Conv2d_BN(hidden, hidden, 3, 1, 1, groups=hidden)
        self.act2 = nn.GELU()
        self.conv3 = Conv2d_BN(hidden, chans, 1)
        self.act3 = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._bands_ok(x):
            return self._forward_bands(x)
        y = act_(self.act1, self.conv1(x))
        y = act_(self.act2, self.conv2(y))
        y = self.conv3(y)
        return act_(self.act3, y.add_(x) if inplace_ok(y) else y + x)

    def _bands_ok(self, x: torch.Tensor) -> bool:
        """Inference on large channels-last CPU maps with folded batch norms."""
        convs = (self.conv1, self.conv2, self.conv3)
        return (
            x.device.type == "cpu"
            and x.shape[-2] * x.shape[-1] >= 128 * 128
            and x.is_contiguous(memory_format=torch.channels_last)
            and not torch.jit.is_tracing()
            and not torch.compiler.is_compiling()
            and not torch.onnx.is_in_onnx_export()
            and inplace_ok(x)
            and all(c.fused_weight is not None and not c.training for c in convs)
        )

    def _forward_bands(self, x: torch.Tensor) -> torch.Tensor:
        """The same block a band of rows at a time (same values), bands spread over the CPU
        threads (:mod:`samkit.modeling.parallel`): one band's expanded activations (~4 MB) stay
        in cache instead of two fresh full-size maps (4x the input) being paged in and
        streamed through memory per block."""
        w1, b1 = _folded(self.conv1)
        w2, b2 = _folded(self.conv2)
        w3, b3 = _folded(self.conv3)
        w1, w3 = w1.flatten(1), w3.flatten(1).t()
        batch, _, height, width = x.shape
        rows = max(1, (4 << 20) // (4 * width * w1.shape[0]))
        xh = x.permute(0, 2, 3, 1)  # (B, H, W, C), a contiguous view
        out = torch.empty_like(xh)
        c = out.shape[-1]
        # The last product writes into ``out`` (no autocast for out= calls): in its dtype.
        w3, b3 = w3.to(out.dtype), b3.to(out.dtype)

        def band(i: int, r0: int, r1: int) -> None:
            a, e = max(r0 - 1, 0), min(r1 + 1, height)  # one row of context each side
            y = act_(self.act1, F.linear(xh[i : i + 1, a:e], w1, b1))
            # Zero padding is right only at the image border: the band's own edge rows are
            # computed from padding and dropped.
            z = F.conv2d(y.permute(0, 3, 1, 2), w2, b2, 1, 1, 1, w2.shape[0])
            z = z[:, :, r0 - a : r1 - a].permute(0, 2, 3, 1)
            z = act_(self.act2, z if z.is_contiguous() else z.contiguous())
            o = out[i, r0:r1].view(-1, c)
            torch.addmm(b3, z.reshape(-1, z.shape[-1]).to(o.dtype), w3, out=o)
            act_(self.act3, o.add_(xh[i, r0:r1].reshape(-1, c)))

        tasks = [
            functools.partial(band, i, r0, min(r0 + rows, height))
            for i in range(batch)
            for r0 in range(0, height, rows)
        ]
        parallel.run(tasks, parallel.workers_for(x))
        return out.permute(0, 3, 1, 2)


def _folded(conv: Conv2d_BN) -> tuple[torch.Tensor, torch.Tensor]:
    if conv.fused_weight is None or conv.fused_bias is None:  # pragma: no cover - checked
        raise RuntimeError("batch norm not folded")
    return conv.fused_weight, conv.fused_bias


class PatchMerging(nn.Module):
    """Downsample tokens (B, L, C) or (B, C, H, W) -> (B, L', out_dim)."""

    def __init__(self, resolution: tuple[int, int], dim: int, out_dim: int, stride: int) -> None:
        super().__init__()
        self.resolution = resolution
        self.act = nn.GELU()
        self.conv1 = Conv2d_BN(dim, out_dim, 1)
        self.conv2 = Conv2d_BN(out_dim, out_dim, 3, stride, 1, groups=out_dim)
        self.conv3 = Conv2d_BN(out_dim, out_dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 3:
            h, w = self.resolution
            x = x.view(x.shape[0], h, w, -1).permute(0, 3, 1, 2)
        x = act_(self.act, self.conv1(x))
        x = act_(self.act, self.conv2(x))
        x = self.conv3(x)
        return x.permute(0, 2, 3, 1).reshape(x.shape[0], -1, x.shape[1])  # a view if channels-last


class ConvLayer(nn.Module):
    def __init__(
        self, dim: int, depth: int, expand_ratio: float, downsample: PatchMerging | None
    ) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(MBConv(dim, expand_ratio) for _ in range(depth))
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return x if self.downsample is None else self.downsample(x)
