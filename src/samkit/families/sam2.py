"""The SAM 2 / SAM 2.1 family: Hiera + FPN encoders with SAM 2's decoder
(:class:`~samkit.sam2.config.Sam2Config`), recognised from the tensors, square geometry, an
image state with the two high-res levels as extras, and its torch engine. Imports no torch."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from samkit.families.base import Family
from samkit.sam2.config import Sam2Config

__all__ = ["SAM2"]


def recognize(state_dict: Mapping[str, Any]) -> Sam2Config | None:
    """The config of SAM 2 tensors, or None for another family's."""
    from samkit.sam2.architecture import infer_sam2_config, is_sam2_state

    return infer_sam2_config(state_dict) if is_sam2_state(state_dict) else None


def build(config: Sam2Config) -> Any:
    from samkit.sam2.build import build_sam2_from_config

    return build_sam2_from_config(config)


def geometry(config: Sam2Config) -> Any:
    from samkit.sam2.geometry import Sam2Geometry

    return Sam2Geometry(config.image_size)


def make_engine(network: Any, **options: Any) -> Any:
    from samkit.sam2.engine import make_engine as make

    return make(network, **options)


def describe(config: Sam2Config) -> str:
    from samkit.sam2.variants import variant_of

    variant = variant_of(config)
    return variant.name if variant is not None else f"custom SAM {config.version} Hiera"


def encoder_blocks(network: Any) -> list[Any]:
    """The Hiera trunk's blocks, input to output."""
    return list(network.image_encoder.trunk.blocks)


SAM2 = Family(
    name="sam2",
    config_types=(Sam2Config,),
    recognize=recognize,
    build=build,
    geometry=geometry,
    make_engine=make_engine,
    describe=describe,
    encoder_blocks=encoder_blocks,
)
