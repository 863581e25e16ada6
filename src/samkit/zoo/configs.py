"""Encoder configs of the zoo families (frozen data; the networks are in :mod:`samkit.modeling`)."""

from __future__ import annotations

from dataclasses import dataclass, replace

__all__ = ["EfficientViTConfig"]


@dataclass(frozen=True)
class EfficientViTConfig:
    """EfficientViT-SAM's image encoder (mit-han-lab/efficientvit): the EfficientViT "large"
    backbone (stages of ResBlock / FusedMBConv / MBConv and EfficientViT blocks of ReLU linear
    attention), SamNeck (three stages projected, bicubic-upsampled to 64x64, summed, refined by
    FusedMBConv blocks) and a LayerNorm2d; every norm has eps 1e-6 (the published models'
    ``set_norm_eps``), the decoder's included.

    ``img_size`` is the encoder input (512 for L0-L2, 1024 for XL0/XL1); prompts and masks stay
    in SAM's 1024 frame whatever it is. Defaults: L0.
    """

    width_list: tuple[int, ...] = (32, 64, 128, 256, 512)
    depth_list: tuple[int, ...] = (1, 1, 1, 4, 4)
    block_list: tuple[str, ...] = ("res", "fmb", "fmb", "mb", "att")
    expand_list: tuple[float, ...] = (1, 4, 4, 4, 6)
    fewer_norm_list: tuple[bool, ...] = (False, False, False, True, True)
    qkv_dim: int = 32
    neck_stages: tuple[int, ...] = (4, 3, 2)  # backbone stages the neck reads, deepest first
    head_width: int = 256
    head_depth: int = 4
    neck_expand: float = 1.0
    img_size: int = 512
    out_chans: int = 256
    norm_eps: float = 1e-6

    @property
    def kind(self) -> str:
        return "efficientvit"

    @property
    def embedding_size(self) -> int:
        """The neck resamples every stage to 64x64 (a fixed size, whatever the input)."""
        return 64

    def at_image_size(self, side: int) -> EfficientViTConfig:
        """The same encoder taking ``side`` px inputs (the embedding stays 64x64)."""
        return replace(self, img_size=side)


_XL_BLOCKS = ("res", "fmb", "fmb", "fmb", "att@3", "att@3")
_XL = {
    "width_list": (32, 64, 128, 256, 512, 1024),
    "block_list": _XL_BLOCKS,
    "expand_list": (1, 4, 4, 4, 4, 6),
    "fewer_norm_list": (False, False, False, False, True, True),
    "neck_stages": (5, 4, 3),
    "neck_expand": 4.0,
    "img_size": 1024,
}
EFFICIENTVIT_L0 = EfficientViTConfig()
EFFICIENTVIT_L1 = EfficientViTConfig(depth_list=(1, 1, 1, 6, 6), head_depth=8)
EFFICIENTVIT_L2 = EfficientViTConfig(depth_list=(1, 2, 2, 8, 8), head_depth=12)
EFFICIENTVIT_XL0 = EfficientViTConfig(depth_list=(0, 1, 1, 2, 3, 3), head_depth=6, **_XL)  # type: ignore[arg-type]
EFFICIENTVIT_XL1 = EfficientViTConfig(depth_list=(1, 2, 2, 4, 6, 6), head_depth=12, **_XL)  # type: ignore[arg-type]
