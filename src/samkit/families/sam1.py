"""SAM-1, the first registered family: Meta's ViT-B/L/H encoders and MobileSAM's TinyViT with
SAM's prompt encoder and mask decoder (:class:`~samkit.registry.SamConfig`), resize-longest-and-
pad geometry, the plain :class:`~samkit.families.state.ImageState` and the torch engine.

Every ``isinstance`` on SAM-1's encoder configs or modules lives here."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from samkit.errors import ArgumentTypeError
from samkit.families.base import Family
from samkit.families.geometry import ResizeLongestPad
from samkit.families.sam1_recognize import recognize_sam1
from samkit.registry import SamConfig, TinyViTConfig, ViTConfig, find_variant

if TYPE_CHECKING:
    import torch
    from torch import nn

    from samkit.modeling import Sam

__all__ = ["SAM1", "UNUSED_PREFIXES", "build_network", "encoder_blocks", "official_keys"]

# TinyViT's ImageNet classifier ships in MobileSAM checkpoints but is never used by SAM.
UNUSED_PREFIXES = ("image_encoder.norm_head.", "image_encoder.head.")
TINY_VIT_CLASSES = 1000


def build_network(config: SamConfig) -> Sam:
    """An untrained SAM-1 network of the given architecture, in eval mode."""
    from samkit.modeling import (
        ImageEncoderViT,
        TinyViT,
    )

    encoder: ImageEncoderViT | TinyViT
    if isinstance(config.encoder, ViTConfig):
        encoder = ImageEncoderViT(config.encoder)
    elif isinstance(config.encoder, TinyViTConfig):
        encoder = TinyViT(config.encoder)
    else:
        raise ArgumentTypeError(
            f"config.encoder must be a ViTConfig or TinyViTConfig, "
            f"got {type(config.encoder).__name__}"
        )
    return assemble(config, encoder)


def assemble(config: SamConfig, encoder: nn.Module) -> Sam:
    """SAM's prompt encoder and mask decoder around ``encoder`` (any module taking (B, 3, S, S)
    normalised images to (B, C, g, g) embeddings, g = ``config.image_embedding_size``), in
    eval mode with ``config`` and ``variant`` set. Families that keep SAM's decoder use it."""
    from samkit.modeling import MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

    grid = config.image_embedding_size
    model = Sam(
        image_encoder=encoder,
        prompt_encoder=PromptEncoder(
            embed_dim=config.prompt_embed_dim,
            image_embedding_size=(grid, grid),
            input_image_size=(config.image_size, config.image_size),
            mask_in_chans=config.mask_in_chans,
        ),
        mask_decoder=MaskDecoder(
            transformer_dim=config.prompt_embed_dim,
            transformer=TwoWayTransformer(
                depth=config.decoder_depth,
                embedding_dim=config.prompt_embed_dim,
                num_heads=config.decoder_num_heads,
                mlp_dim=config.decoder_mlp_dim,
            ),
            num_multimask_outputs=config.num_multimask_outputs,
            iou_head_depth=config.iou_head_depth,
            iou_head_hidden_dim=config.iou_head_hidden_dim,
        ),
        pixel_mean=config.pixel_mean,
        pixel_std=config.pixel_std,
    )
    model.config = config  # type: ignore[assignment]
    variant = find_variant(config)
    model.variant = variant.name if variant else None
    return model.eval()


def filter_keys(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """Hugging Face ``transformers`` files renamed to the official layout
    (:func:`samkit.zoo.hf_layout.from_hf_layout`); TinyViT's unused classifier (official
    MobileSAM and Ultralytics files carry it) dropped."""
    from samkit.zoo.hf_layout import from_hf_layout

    state = from_hf_layout(state_dict)
    return {k: v for k, v in state.items() if not k.startswith(UNUSED_PREFIXES)}


def official_keys(
    network: Sam, state: dict[str, torch.Tensor], checkpoint: str | os.PathLike[str] | None = None
) -> dict[str, torch.Tensor]:
    """``state`` (the network's tensors) in the official layout: for TinyViT, the unused
    classifier the reference loaders require, taken from the ``checkpoint`` file when it has
    it (read only for TinyViT), else an identity norm and a zero 1000-class head."""
    import torch

    from samkit.modeling import TinyViT

    encoder = getattr(network, "image_encoder", None)
    if not isinstance(encoder, TinyViT):
        return state
    found: dict[str, Any] = {}
    if checkpoint is not None:
        from samkit.weights import load_state_dict

        found = {
            k: v for k, v in load_state_dict(checkpoint).items() if k.startswith(UNUSED_PREFIXES)
        }
    if not found:
        dim = int(encoder.config.embed_dims[-1])
        found = {
            "image_encoder.norm_head.weight": torch.ones(dim),
            "image_encoder.norm_head.bias": torch.zeros(dim),
            "image_encoder.head.weight": torch.zeros(TINY_VIT_CLASSES, dim),
            "image_encoder.head.bias": torch.zeros(TINY_VIT_CLASSES),
        }
    return {**state, **found}


def encoder_blocks(network: Sam) -> list[nn.Module]:
    """The image encoder's transformer blocks, input to output (for partial fine-tuning)."""
    from samkit.modeling import ImageEncoderViT

    enc: Any = network.image_encoder
    if isinstance(enc, ImageEncoderViT):
        return list(enc.blocks)
    return [b for layer in enc.layers for b in getattr(layer, "blocks", [])]


def describe(config: SamConfig) -> str:
    variant = find_variant(config)
    return variant.name if variant is not None else f"custom {config.encoder.kind}"


def geometry(config: SamConfig) -> ResizeLongestPad:
    return ResizeLongestPad(config.image_size)


def export_graphs(network: Sam) -> tuple[Any, Any]:
    """The ONNX export graph classes of a SAM-1 network: ``EncoderGraph(network,
    bake_preprocess)`` and ``DecoderGraph(network, return_single_mask, return_low_res)``
    (:mod:`samkit.export.graphs`)."""
    from samkit.export.graphs import DecoderGraph, EncoderGraph

    return EncoderGraph, DecoderGraph


SAM1 = Family(
    name="sam1",
    config_types=(ViTConfig, TinyViTConfig),
    recognize=recognize_sam1,
    build=build_network,
    geometry=geometry,
    filter_keys=filter_keys,
    export_graphs=export_graphs,
    describe=describe,
    official_keys=official_keys,
    encoder_blocks=encoder_blocks,
)
