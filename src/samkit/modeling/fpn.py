"""SAM 2's image encoder: a Hiera trunk and an FPN neck.

The neck projects every trunk stage to ``d_model`` channels (1x1 convolutions) and adds the
nearest-upsampled coarser level to the levels in ``fpn_top_down_levels``; the coarsest level is
then dropped (``scalp``), leaving three feature levels: 256x256, 128x128 and 64x64 at a 1024
input. Attribute names equal Meta's checkpoint keys under ``image_encoder.``.

The neck's sine position encoding has no parameters and is not used by the image path (the
mask decoder takes the prompt encoder's dense encoding); :func:`sine_position_encoding` gives it
for the memory modules.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from samkit.errors import ArgumentError
from samkit.modeling.hiera import Hiera
from samkit.sam2.config import FpnConfig, HieraConfig


class FpnNeck(nn.Module):
    """Trunk stages (highest resolution first) -> ``d_model``-channel maps, same order."""

    def __init__(self, backbone_channel_list: list[int], config: FpnConfig) -> None:
        super().__init__()
        if config.fuse_type not in ("sum", "avg"):
            raise ArgumentError(f"fuse_type must be 'sum' or 'avg', got {config.fuse_type!r}")
        self.config = config
        self.d_model = config.d_model
        self.backbone_channel_list = list(backbone_channel_list)
        # convs[j] projects the j-th coarsest stage (Meta's order).
        self.convs = nn.ModuleList()
        for dim in backbone_channel_list:
            lateral = nn.Sequential()
            lateral.add_module("conv", nn.Conv2d(dim, config.d_model, kernel_size=1))
            self.convs.append(lateral)

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        n = len(self.convs) - 1
        if len(xs) != n + 1:
            raise ArgumentError(f"the neck takes {n + 1} feature maps, got {len(xs)}")
        mode = self.config.fpn_interp_model
        out: list[torch.Tensor] = [xs[0]] * (n + 1)
        prev: torch.Tensor | None = None
        for i in range(n, -1, -1):  # coarsest first
            lateral = self.convs[n - i](xs[i])
            if i in self.config.fpn_top_down_levels and prev is not None:
                top_down = F.interpolate(
                    prev.to(torch.float32),
                    scale_factor=2.0,
                    mode=mode,
                    align_corners=None if mode == "nearest" else False,
                    antialias=False,
                )
                prev = lateral + top_down
                if self.config.fuse_type == "avg":
                    prev = prev / 2
            else:
                prev = lateral
            out[i] = prev
        return out


class Sam2ImageEncoder(nn.Module):
    """(B, 3, S, S) normalised image -> the three feature levels kept after ``scalp``:
    [(B, 256, S/4, S/4), (B, 256, S/8, S/8), (B, 256, S/16, S/16)] (before the decoder's
    ``conv_s0`` / ``conv_s1`` projections)."""

    def __init__(self, trunk: HieraConfig, neck: FpnConfig) -> None:
        super().__init__()
        self.trunk = Hiera(trunk)
        self.neck = FpnNeck(self.trunk.channel_list, neck)
        self.scalp = neck.scalp

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = self.neck(self.trunk(x))
        return features[: len(features) - self.scalp] if self.scalp > 0 else features


def sine_position_encoding(
    batch: int,
    size: tuple[int, int],
    channels: int = 256,
    temperature: float = 10000.0,
    device: torch.device | None = None,
) -> torch.Tensor:
    """The normalised 2-D sine encoding of an (h, w) grid (Meta's ``PositionEmbeddingSine``
    with ``normalize=True``): (batch, channels, h, w) float32, y half first."""
    h, w = size
    feats = channels // 2
    eps, scale = 1e-6, 2 * math.pi
    y = torch.arange(1, h + 1, dtype=torch.float32, device=device).view(-1, 1).expand(h, w)
    x = torch.arange(1, w + 1, dtype=torch.float32, device=device).view(1, -1).expand(h, w)
    y = y / (y[-1:, :] + eps) * scale
    x = x / (x[:, -1:] + eps) * scale
    dim_t = torch.arange(feats, dtype=torch.float32, device=device)
    dim_t = temperature ** (2 * (dim_t // 2) / feats)

    def interleave(v: torch.Tensor) -> torch.Tensor:
        p = v[:, :, None] / dim_t
        return torch.stack((p[:, :, 0::2].sin(), p[:, :, 1::2].cos()), dim=3).flatten(2)

    pos = torch.cat((interleave(y), interleave(x)), dim=2).permute(2, 0, 1)
    return pos[None].expand(batch, -1, -1, -1)
