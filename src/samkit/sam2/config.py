"""SAM 2 / SAM 2.1 architectures (frozen data, no torch): the Hiera trunk and FPN neck configs,
one :class:`Sam2Config` per network, the four published trunk sizes, and the shapes of the
video modules' tensors (kept with every loaded model so a checkpoint round-trips in Meta's
layout)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class HieraConfig:
    """One Hiera trunk. Defaults are Meta's ``Hiera`` defaults (the base+ size)."""

    embed_dim: int = 112
    num_heads: int = 2
    stages: tuple[int, ...] = (2, 3, 16, 3)
    global_att_blocks: tuple[int, ...] = (12, 16, 20)
    window_spec: tuple[int, ...] = (8, 4, 14, 7)
    window_pos_embed_bkg_spatial_size: tuple[int, int] = (14, 14)
    q_pool: int = 3
    q_stride: tuple[int, int] = (2, 2)
    dim_mul: float = 2.0
    head_mul: float = 2.0
    mlp_ratio: float = 4.0

    @property
    def kind(self) -> str:
        return "hiera"

    @property
    def channel_list(self) -> tuple[int, ...]:
        """Output channels of each stage, lowest resolution first (the FPN neck's order)."""
        dims = [self.embed_dim]
        for _ in self.stages[1:]:
            dims.append(int(dims[-1] * self.dim_mul))
        return tuple(reversed(dims))


@dataclass(frozen=True)
class FpnConfig:
    """The FPN neck (Meta's ``FpnNeck`` arguments) and the number of levels dropped."""

    d_model: int = 256
    fpn_top_down_levels: tuple[int, ...] = (2, 3)
    fpn_interp_model: str = "nearest"
    fuse_type: str = "sum"
    scalp: int = 1


# ImageNet statistics on [0, 1] pixels (SAM 2's transforms), not SAM's [0, 255] ones.
PIXEL_MEAN = (0.485, 0.456, 0.406)
PIXEL_STD = (0.229, 0.224, 0.225)

HIERA_TINY = HieraConfig(
    embed_dim=96,
    num_heads=1,
    stages=(1, 2, 7, 2),
    global_att_blocks=(5, 7, 9),
    window_pos_embed_bkg_spatial_size=(7, 7),
)
HIERA_SMALL = HieraConfig(
    embed_dim=96,
    num_heads=1,
    stages=(1, 2, 11, 2),
    global_att_blocks=(7, 10, 13),
    window_pos_embed_bkg_spatial_size=(7, 7),
)
HIERA_BASE_PLUS = HieraConfig()  # Meta's Hiera defaults are the base+ trunk
HIERA_LARGE = HieraConfig(
    embed_dim=144,
    num_heads=2,
    stages=(2, 6, 36, 4),
    global_att_blocks=(23, 33, 43),
    window_pos_embed_bkg_spatial_size=(7, 7),
    window_spec=(8, 4, 16, 8),
)
TRUNKS: dict[str, HieraConfig] = {
    "tiny": HIERA_TINY,
    "small": HIERA_SMALL,
    "base_plus": HIERA_BASE_PLUS,
    "large": HIERA_LARGE,
}


@dataclass(frozen=True)
class Sam2Config:
    """Everything needed to build a SAM 2 network (image path plus the video modules' tensors).

    ``version`` "2.1" adds ``no_obj_embed_spatial`` and ``obj_ptr_tpos_proj`` to the video
    tensors; the image path is the same function for both versions.
    """

    trunk: HieraConfig = field(default_factory=lambda: HIERA_TINY)
    neck: FpnConfig = field(default_factory=FpnConfig)
    version: str = "2.1"
    image_size: int = 1024
    backbone_stride: int = 16
    mask_in_chans: int = 16
    decoder_depth: int = 2
    decoder_num_heads: int = 8
    decoder_mlp_dim: int = 2048
    num_multimask_outputs: int = 3
    iou_head_depth: int = 3
    iou_head_hidden_dim: int = 256
    use_high_res_features: bool = True
    iou_prediction_use_sigmoid: bool = True
    pred_obj_scores: bool = True
    pred_obj_scores_mlp: bool = True
    num_maskmem: int = 7
    mem_dim: int = 64
    memory_attention_layers: int = 4
    memory_ffn_dim: int = 2048
    fuser_layers: int = 2
    pixel_mean: tuple[float, float, float] = PIXEL_MEAN
    pixel_std: tuple[float, float, float] = PIXEL_STD

    @property
    def kind(self) -> str:
        return "sam2"

    @property
    def prompt_embed_dim(self) -> int:
        return self.neck.d_model

    @property
    def image_embedding_size(self) -> int:
        """Side of the 64x64 (at 1024) grid the prompt encoder and decoder work on."""
        return self.image_size // self.backbone_stride

    @property
    def feature_sizes(self) -> tuple[int, int, int]:
        """Sides of the three feature levels: 256, 128, 64 at a 1024 input."""
        s = self.image_embedding_size
        return (4 * s, 2 * s, s)


def video_tensor_shapes(config: Sam2Config) -> dict[str, tuple[int, ...]]:
    """Names and shapes of the video modules' tensors in Meta's checkpoints (memory attention,
    memory encoder, object pointers, memory embeddings), for ``config``."""
    d, m = config.prompt_embed_dim, config.mem_dim
    shapes: dict[str, tuple[int, ...]] = {
        "maskmem_tpos_enc": (config.num_maskmem, 1, 1, m),
        "no_mem_pos_enc": (1, 1, d),
        "no_obj_ptr": (1, d),
        "mask_downsample.weight": (1, 1, 4, 4),
        "mask_downsample.bias": (1,),
    }
    if config.version != "2.0":
        shapes["no_obj_embed_spatial"] = (1, m)

    def linear(name: str, n_out: int, n_in: int) -> None:
        shapes[f"{name}.weight"] = (n_out, n_in)
        shapes[f"{name}.bias"] = (n_out,)

    for i in range(config.memory_attention_layers):
        p = f"memory_attention.layers.{i}."
        for attn, kv in (("self_attn", d), ("cross_attn_image", m)):
            linear(p + attn + ".q_proj", d, d)
            linear(p + attn + ".k_proj", d, kv)
            linear(p + attn + ".v_proj", d, kv)
            linear(p + attn + ".out_proj", d, d)
        linear(p + "linear1", config.memory_ffn_dim, d)
        linear(p + "linear2", d, config.memory_ffn_dim)
        for norm in ("norm1", "norm2", "norm3"):
            shapes[p + norm + ".weight"] = (d,)
            shapes[p + norm + ".bias"] = (d,)
    shapes["memory_attention.norm.weight"] = (d,)
    shapes["memory_attention.norm.bias"] = (d,)
    _memory_encoder_shapes(shapes, d, m, config.fuser_layers)
    for i in range(3):
        linear(f"obj_ptr_proj.layers.{i}", d, d)
    if config.version != "2.0":
        linear("obj_ptr_tpos_proj", m, d)
    return shapes


def _memory_encoder_shapes(
    shapes: dict[str, tuple[int, ...]], d: int, m: int, fuser_layers: int
) -> None:
    """The mask downsampler (four stride-2 3x3 convolutions with LayerNorm2d, 1 -> 4 -> 16 ->
    64 -> 256 channels, then a 1x1), the fuser's ConvNeXt blocks and the two projections."""
    p = "memory_encoder."
    channels = [1, 4, 16, 64, d]
    for j in range(4):
        conv, norm = 3 * j, 3 * j + 1
        shapes[f"{p}mask_downsampler.encoder.{conv}.weight"] = (channels[j + 1], channels[j], 3, 3)
        shapes[f"{p}mask_downsampler.encoder.{conv}.bias"] = (channels[j + 1],)
        shapes[f"{p}mask_downsampler.encoder.{norm}.weight"] = (channels[j + 1],)
        shapes[f"{p}mask_downsampler.encoder.{norm}.bias"] = (channels[j + 1],)
    shapes[f"{p}mask_downsampler.encoder.12.weight"] = (d, d, 1, 1)
    shapes[f"{p}mask_downsampler.encoder.12.bias"] = (d,)
    shapes[f"{p}pix_feat_proj.weight"] = (d, d, 1, 1)
    shapes[f"{p}pix_feat_proj.bias"] = (d,)
    for i in range(fuser_layers):
        q = f"{p}fuser.layers.{i}."
        shapes[q + "gamma"] = (d,)
        shapes[q + "dwconv.weight"] = (d, 1, 7, 7)
        shapes[q + "dwconv.bias"] = (d,)
        shapes[q + "norm.weight"] = (d,)
        shapes[q + "norm.bias"] = (d,)
        shapes[q + "pwconv1.weight"] = (4 * d, d)
        shapes[q + "pwconv1.bias"] = (4 * d,)
        shapes[q + "pwconv2.weight"] = (d, 4 * d)
        shapes[q + "pwconv2.bias"] = (d,)
    shapes[f"{p}out_proj.weight"] = (m, d, 1, 1)
    shapes[f"{p}out_proj.bias"] = (m,)
