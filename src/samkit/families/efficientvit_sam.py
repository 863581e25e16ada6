"""EfficientViT-SAM (mit-han-lab/efficientvit): the EfficientViT encoder
(:mod:`samkit.modeling.efficientvit`) with SAM's prompt encoder and mask decoder, every norm's
eps 1e-6 (the decoder transformer's LayerNorms included, as the published models'
``set_norm_eps``).

Geometry: L0 / L1 / L2 take a 512-px encoder input and XL0 / XL1 a 1024-px one, while prompts,
the prompt encoder's frame and the masks stay in SAM's 1024 frame
(:class:`~samkit.families.geometry.ResizeLongestPad` with ``prompt_side=1024``). The input size
is not stored in a checkpoint: a 5-stage backbone (the L models) is taken as 512 px and a
6-stage one (XL) as 1024 px, as published.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from samkit.errors import CheckpointError
from samkit.families import sam1
from samkit.families.base import Family
from samkit.families.geometry import ResizeLongestPad
from samkit.families.sam1_recognize import decoder_fields
from samkit.registry import SamConfig, find_variant
from samkit.zoo.configs import EfficientViTConfig

if TYPE_CHECKING:
    from samkit.modeling import Sam

__all__ = ["EFFICIENTVIT_SAM", "build_efficientvit_sam", "recognize_efficientvit"]

_BB = "image_encoder.backbone.stages."
_NECK = "image_encoder.neck."
PROMPT_SIDE = 1024


def _shape(sd: Mapping[str, Any], key: str) -> tuple[int, ...]:
    if key not in sd:
        raise CheckpointError(f"not an EfficientViT-SAM checkpoint: tensor {key!r} is missing")
    return tuple(int(s) for s in sd[key].shape)


def _indexes(sd: Mapping[str, Any], prefix: str) -> int:
    pattern = re.compile(re.escape(prefix) + r"(\d+)\.")
    found = {int(m.group(1)) for k in sd if (m := pattern.match(k))}
    return max(found) + 1 if found else 0


def _block_kind(sd: Mapping[str, Any], block: str) -> tuple[str, str]:
    """(kind, name of its expanding conv) of the block whose keys start with ``block``."""
    if f"{block}context_module.main.qkv.conv.weight" in sd:
        kernel = _shape(sd, f"{block}context_module.main.aggreg.0.0.weight")[-1]
        return ("att@3" if kernel == 3 else "att"), "local_module.main.inverted_conv"
    for kind, conv in (("res", "conv1"), ("fmb", "spatial_conv"), ("mb", "inverted_conv")):
        if f"{block}main.{conv}.conv.weight" in sd:
            return kind, f"main.{conv}"
    raise CheckpointError(f"not an EfficientViT-SAM checkpoint: unknown block at {block!r}")


def _stage(sd: Mapping[str, Any], s: int, c_in: int) -> tuple[int, int, str, float, bool, int]:
    """(width, depth, block kind, expand ratio, fewer norm, qkv dim) of backbone stage ``s``."""
    ops = f"{_BB}{s}.op_list."
    n_ops = _indexes(sd, ops)
    if s == 0:
        width = _shape(sd, f"{ops}0.conv.weight")[0]
        kind, expand, fewer, dim = "res", 1.0, False, 32
        if n_ops > 1:
            kind, conv = _block_kind(sd, f"{ops}1.")
            expand = _shape(sd, f"{ops}1.{conv}.conv.weight")[0] / width
            fewer = f"{ops}1.{conv}.norm.weight" not in sd
        return width, n_ops - 1, kind, expand, fewer, dim
    down_kind, down_conv = _block_kind(sd, f"{ops}0.")
    width = _shape(sd, f"{ops}0.main.point_conv.conv.weight")[0]
    expand = _shape(sd, f"{ops}0.{down_conv}.conv.weight")[0] / c_in / 4
    fewer = f"{ops}0.{down_conv}.norm.weight" not in sd
    kind, dim = down_kind, 32
    if n_ops > 1:
        kind, conv = _block_kind(sd, f"{ops}1.")
        expand = _shape(sd, f"{ops}1.{conv}.conv.weight")[0] / width
        if kind.startswith("att"):
            dim = _shape(sd, f"{ops}1.context_module.main.aggreg.0.1.weight")[1]
    return width, n_ops - 1, kind, expand, fewer, dim


def recognize_efficientvit(state_dict: Mapping[str, Any]) -> SamConfig | None:
    """The config of an EfficientViT-SAM state dict (official layout), else ``None``."""
    sd = state_dict
    if (
        f"{_BB}0.op_list.0.conv.weight" not in sd
        or f"{_NECK}input_ops.0.op_list.0.conv.weight" not in sd
    ):
        return None
    n_stages = _indexes(sd, _BB)
    stages = []
    c_in = 3
    for s in range(n_stages):
        stages.append(_stage(sd, s, c_in))
        c_in = stages[-1][0]
    widths = [st[0] for st in stages]
    neck_in = [
        _shape(sd, f"{_NECK}input_ops.{i}.op_list.0.conv.weight")
        for i in range(_indexes(sd, f"{_NECK}input_ops."))
    ]
    head_width = neck_in[0][0]
    middle = f"{_NECK}middle.op_list."
    encoder = EfficientViTConfig(
        width_list=tuple(widths),
        depth_list=tuple(st[1] for st in stages),
        block_list=tuple(st[2] for st in stages),
        expand_list=tuple(st[3] for st in stages),
        fewer_norm_list=tuple(st[4] for st in stages),
        qkv_dim=max(st[5] for st in stages),
        neck_stages=tuple(widths.index(shape[1]) for shape in neck_in),
        head_width=head_width,
        head_depth=_indexes(sd, middle),
        neck_expand=_shape(sd, f"{middle}0.main.spatial_conv.conv.weight")[0] / head_width,
        img_size=512 if n_stages == 5 else 1024,
        out_chans=_shape(sd, f"{_NECK}output_ops.0.op_list.0.conv.weight")[0],
    )
    return SamConfig(encoder=encoder, **decoder_fields(sd))


def build_efficientvit_sam(config: SamConfig) -> Sam:
    """An untrained EfficientViT-SAM network of the given architecture, in eval mode: prompts
    in the 1024 frame whatever the encoder's input size; every norm's eps 1e-6."""
    from torch import nn

    from samkit.modeling import MaskDecoder, PromptEncoder, Sam, TwoWayTransformer
    from samkit.modeling.efficientvit import EfficientViTImageEncoder

    if not isinstance(config.encoder, EfficientViTConfig):
        raise CheckpointError(f"not an EfficientViT config: {type(config.encoder).__name__}")
    grid = config.image_embedding_size
    transformer = TwoWayTransformer(
        config.decoder_depth,
        config.prompt_embed_dim,
        config.decoder_num_heads,
        config.decoder_mlp_dim,
    )
    decoder = MaskDecoder(
        config.prompt_embed_dim,
        transformer,
        config.num_multimask_outputs,
        config.iou_head_depth,
        config.iou_head_hidden_dim,
    )
    for module in decoder.modules():
        if isinstance(module, nn.LayerNorm):
            module.eps = config.encoder.norm_eps
    model = Sam(
        EfficientViTImageEncoder(config.encoder),
        PromptEncoder(
            config.prompt_embed_dim, (grid, grid), (PROMPT_SIDE, PROMPT_SIDE), config.mask_in_chans
        ),
        decoder,
        config.pixel_mean,
        config.pixel_std,
    )
    model.config = config  # type: ignore[assignment]
    variant = find_variant(config)
    model.variant = variant.name if variant else None
    return model.eval()


def _geometry(config: SamConfig) -> ResizeLongestPad:
    return ResizeLongestPad(encoder_side=config.image_size, prompt_side=PROMPT_SIDE)


def _describe(config: SamConfig) -> str:
    variant = find_variant(config)
    return variant.name if variant is not None else "custom efficientvit"


def _encoder_blocks(network: Sam) -> list[Any]:
    """The backbone's blocks, input to output (partial fine-tuning trains the last ones)."""
    encoder: Any = network.image_encoder
    return [op for stage in encoder.backbone.stages for op in stage.op_list]


EFFICIENTVIT_SAM = Family(
    name="efficientvit_sam",
    config_types=(EfficientViTConfig,),
    recognize=recognize_efficientvit,
    build=build_efficientvit_sam,
    geometry=_geometry,
    filter_keys=sam1.filter_keys,
    describe=_describe,
    encoder_blocks=_encoder_blocks,
)
