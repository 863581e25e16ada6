"""Encoder configs of the zoo families (frozen data; the networks are in :mod:`samkit.modeling`)."""

from __future__ import annotations

from dataclasses import dataclass, replace

__all__ = ["EfficientViTConfig", "RepViTConfig"]


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


@dataclass(frozen=True)
class RepViTConfig:
    """A RepViT image encoder (Wang et al.): a stride-4 stem, then blocks of a re-parameterisable
    depthwise token mixer (3x3 + 1x1 + identity, with squeeze-excite on some) and a 2x MLP;
    ``downsample`` blocks mix with a strided depthwise conv and a 1x1 conv instead.

    RepViT-SAM (THU-MIG/RepViT ``sam/``): no FPN, the last downsample keeps stride 1 (total
    stride 16). EdgeSAM (chongzhou96/EdgeSAM, RepViT-M1): every downsample halves (stride 32)
    and an FPN adds the stride-16 stage (1x1 conv) to the stride-32 one (1x1 conv, bicubic 2x
    upsampling) before SAM's neck. Downsample strides: 2 while the total stride is below the
    target (16 without FPN, 32 with it), else 1 -- they are not stored in checkpoints.
    """

    widths: tuple[int, ...]
    se: tuple[bool, ...]
    downsample: tuple[bool, ...]
    fpn: bool = False
    dw_norm_after_sum: bool = False  # RepViT-SAM: bn(x + dw3x3(x) + conv1x1(x)), conv1x1 biased
    img_size: int = 1024
    out_chans: int = 256

    @property
    def kind(self) -> str:
        return "repvit"

    @property
    def embedding_size(self) -> int:
        return self.img_size // 16

    def at_image_size(self, side: int) -> RepViTConfig:
        return replace(self, img_size=side)

    def strides(self) -> tuple[int, ...]:
        """Each block's stride (see the class docstring)."""
        target, total, out = (32 if self.fpn else 16), 4, []
        for down in self.downsample:
            stride = 2 if down and total < target else 1
            total *= stride
            out.append(stride)
        return tuple(out)


def _repvit(rows: list[tuple[int, int, int]], fpn: bool, norm_after: bool) -> RepViTConfig:
    """From the upstream tables' (channels, SE, stride) columns."""
    return RepViTConfig(
        widths=tuple(c for c, _, _ in rows),
        se=tuple(bool(e) for _, e, _ in rows),
        downsample=tuple(s == 2 for _, _, s in rows),
        fpn=fpn,
        dw_norm_after_sum=norm_after,
    )


# EdgeSAM's RepViT-M1 (edge_sam/modeling/rep_vit.py m1_cfgs), with FPN.
_M1 = (
    [(48, 1, 1), (48, 0, 1), (48, 0, 1)]
    + [(96, 0, 2), (96, 1, 1), (96, 0, 1), (96, 0, 1)]
    + [(192, 0, 2)]
    + [(192, (i + 1) % 2, 1) for i in range(14)]
    + [(192, 0, 1)]
    + [(384, 0, 2), (384, 1, 1), (384, 0, 1)]
)
EDGE_SAM_M1 = _repvit(_M1, fpn=True, norm_after=False)
# RepViT-SAM's encoder (sam/repvit_sam/modeling/repvit.py ``repvit``): RepViT-M2.3 widths.
_M23 = (
    [(80, (i + 1) % 2, 1) for i in range(6)]
    + [(80, 0, 1)]
    + [(160, 0, 2)]
    + [(160, (i + 1) % 2, 1) for i in range(6)]
    + [(160, 0, 1)]
    + [(320, 0, 2)]
    + [(320, (i + 1) % 2, 1) for i in range(34)]
    + [(320, 0, 1)]
    + [(640, 0, 2), (640, 1, 1), (640, 0, 1)]
)
REPVIT_SAM_M23 = _repvit(_M23, fpn=False, norm_after=True)
