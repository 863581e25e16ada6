"""SAM-HQ (SysCV/sam-hq; Light HQ-SAM on TinyViT): SAM-1's encoders and prompt encoder with
:class:`~samkit.modeling.hq.MaskDecoderHQ`, recognised by the HQ token's tensors.

Registered before SAM-1 (an HQ checkpoint also holds a complete SAM-1 network, so the more
specific family must be asked first). Geometry and key layouts are SAM-1's; Hugging Face
``SamHQModel`` files are renamed by :func:`samkit.zoo.hf_layout.from_hf_layout`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import TYPE_CHECKING, Any

from samkit.errors import CheckpointError
from samkit.families import sam1
from samkit.families.base import Family
from samkit.families.sam1_recognize import recognize_sam1
from samkit.registry import SamConfig, SamHQConfig, find_variant

if TYPE_CHECKING:
    from samkit.modeling.hq import SamHQ

__all__ = ["SAM_HQ", "build_hq", "recognize_hq"]

_HQ_TOKEN = "mask_decoder.hf_token.weight"
_COMPRESS = "mask_decoder.compress_vit_feat.0.weight"


def recognize_hq(state_dict: Mapping[str, Any]) -> SamHQConfig | None:
    """The :class:`SamHQConfig` of an HQ-SAM state dict (official layout), else ``None``."""
    if _HQ_TOKEN not in state_dict:
        return None
    base = recognize_sam1(state_dict)
    if base is None:
        return None
    if _COMPRESS not in state_dict:
        raise CheckpointError(f"SAM-HQ checkpoint without {_COMPRESS!r}: the file is incomplete")
    values = {f.name: getattr(base, f.name) for f in fields(SamConfig)}
    return SamHQConfig(**values, hq_vit_dim=int(state_dict[_COMPRESS].shape[0]))


def build_hq(config: SamHQConfig) -> SamHQ:
    """An untrained SAM-HQ network of the given architecture, in eval mode."""
    from samkit.modeling.hq import MaskDecoderHQ, SamHQ

    plain = sam1.build_network(config)  # the encoder, prompt encoder and transformer
    decoder = MaskDecoderHQ(
        config.prompt_embed_dim,
        plain.mask_decoder.transformer,
        config.hq_vit_dim,
        config.num_multimask_outputs,
        config.iou_head_depth,
        config.iou_head_hidden_dim,
    )
    model = SamHQ(
        plain.image_encoder, plain.prompt_encoder, decoder, config.pixel_mean, config.pixel_std
    )
    model.config = config  # type: ignore[assignment]
    variant = find_variant(config)
    model.variant = variant.name if variant else None
    return model.eval()


def _describe(config: SamHQConfig) -> str:
    variant = find_variant(config)
    return variant.name if variant is not None else f"custom sam_hq ({config.encoder.kind})"


def _make_engine(network: SamHQ, **options: Any) -> Any:
    from samkit.zoo.hq_engine import HQEngine

    return HQEngine(network, **options)


SAM_HQ = Family(
    name="sam_hq",
    config_types=(SamHQConfig,),
    recognize=recognize_hq,
    build=build_hq,
    geometry=sam1.geometry,
    filter_keys=sam1.filter_keys,
    make_engine=_make_engine,
    describe=_describe,
    official_keys=sam1.official_keys,
    encoder_blocks=sam1.encoder_blocks,
)
