"""RepViT-SAM (THU-MIG/RepViT ``sam/``) and EdgeSAM (chongzhou96/EdgeSAM): RepViT encoders
(:mod:`samkit.modeling.repvit`) with SAM's prompt encoder and mask decoder, SAM-1 geometry.

EdgeSAM's weights are under the NTU S-Lab License 1.0, for non-commercial use only: loading
them warns once (:func:`edge_sam_licence_warning`). Its mask-selection habits are options of
samkit's outputs, not changes of its defaults: EdgeSAM's IoU head was not distilled, so EdgeSAM
picks among candidates by stability score (``samkit.zoo.selection.best_by_stability``), and it
can return all four decoder masks (``samkit.zoo.selection.four_masks``).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from samkit.errors import CheckpointError
from samkit.families import sam1
from samkit.families.base import Family
from samkit.families.sam1_recognize import decoder_fields
from samkit.registry import SamConfig, find_variant
from samkit.zoo.configs import RepViTConfig

if TYPE_CHECKING:
    from samkit.modeling import Sam

__all__ = ["REPVIT_SAM", "build_repvit_sam", "edge_sam_licence_warning", "recognize_repvit"]

_F = "image_encoder.features."
EDGE_SAM_LICENCE = "NTU S-Lab License 1.0 (non-commercial use only)"


def edge_sam_licence_warning() -> None:
    """Say at load time that EdgeSAM's weights are for non-commercial use only."""
    warnings.warn(
        f"EdgeSAM weights are licensed under the {EDGE_SAM_LICENCE}; "
        "see https://github.com/chongzhou96/EdgeSAM/blob/master/LICENSE",
        UserWarning,
        stacklevel=3,
    )


def recognize_repvit(state_dict: Mapping[str, Any]) -> SamConfig | None:
    """The config of a RepViT-SAM / EdgeSAM state dict (official layout), else ``None``."""
    sd = state_dict
    if f"{_F}0.0.c.weight" not in sd or f"{_F}1.channel_mixer.m.0.c.weight" not in sd:
        return None
    pattern = re.compile(re.escape(_F) + r"(\d+)\.")
    count = max(int(m.group(1)) for k in sd if (m := pattern.match(k))) + 1
    widths, se, down = [], [], []
    for i in range(1, count):
        block = f"{_F}{i}."
        if f"{block}channel_mixer.m.2.c.weight" not in sd:
            raise CheckpointError(f"not a RepViT checkpoint: block {i} has no channel mixer")
        widths.append(int(sd[f"{block}channel_mixer.m.2.c.weight"].shape[0]))
        down.append(f"{block}token_mixer.2.c.weight" in sd)
        se.append(f"{block}token_mixer.1.fc1.weight" in sd)
    encoder = RepViTConfig(
        widths=tuple(widths),
        se=tuple(se),
        downsample=tuple(down),
        fpn="image_encoder.fuse_stage2.weight" in sd,
        # RepViT-SAM's 1x1 branch is a plain biased conv (EdgeSAM's a conv + BN, ``conv1.c``).
        dw_norm_after_sum=any(k.endswith("token_mixer.0.conv1.weight") for k in sd),
        out_chans=int(sd["image_encoder.neck.0.weight"].shape[0]),
    )
    return SamConfig(encoder=encoder, **decoder_fields(sd))


def build_repvit_sam(config: SamConfig) -> Sam:
    """An untrained RepViT-SAM / EdgeSAM network of the given architecture, in eval mode."""
    from samkit.modeling.repvit import RepViTImageEncoder

    if not isinstance(config.encoder, RepViTConfig):
        raise CheckpointError(f"not a RepViT config: {type(config.encoder).__name__}")
    model = sam1.assemble(config, RepViTImageEncoder(config.encoder))
    if model.variant is not None and model.variant.startswith("edge_sam"):
        edge_sam_licence_warning()
    return model


def _describe(config: SamConfig) -> str:
    variant = find_variant(config)
    return variant.name if variant is not None else "custom repvit"


def _encoder_blocks(network: Sam) -> list[Any]:
    encoder: Any = network.image_encoder
    return list(encoder.features)


REPVIT_SAM = Family(
    name="repvit_sam",
    config_types=(RepViTConfig,),
    recognize=recognize_repvit,
    build=build_repvit_sam,
    geometry=sam1.geometry,
    filter_keys=sam1.filter_keys,
    describe=_describe,
    encoder_blocks=_encoder_blocks,
)
