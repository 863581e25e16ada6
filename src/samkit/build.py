"""Builders: a :class:`~samkit.registry.SamConfig` becomes a :class:`~samkit.modeling.Sam`;
``build_sam`` loads any official or renamed checkpoint, recognising it by content."""

from __future__ import annotations

import os
from collections.abc import Callable

import torch

from samkit.architecture import infer_config
from samkit.errors import ArgumentError, ArgumentTypeError, CheckpointError
from samkit.modeling import (
    ImageEncoderViT,
    MaskDecoder,
    PromptEncoder,
    Sam,
    TinyViT,
    TwoWayTransformer,
)
from samkit.modeling.hq import MaskDecoderHQ, SamHQ
from samkit.registry import (
    VARIANTS,
    SamConfig,
    SamHQConfig,
    TinyViTConfig,
    ViTConfig,
    find_variant,
    get_variant,
)
from samkit.zoo.hf_layout import from_hf_layout

# TinyViT's ImageNet classifier ships in MobileSAM checkpoints but is never used by SAM.
UNUSED_PREFIXES = ("image_encoder.norm_head.", "image_encoder.head.")


def build_from_config(config: SamConfig) -> Sam:
    """An untrained network of the given architecture, in eval mode."""
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
    grid = config.image_embedding_size
    transformer = TwoWayTransformer(
        depth=config.decoder_depth,
        embedding_dim=config.prompt_embed_dim,
        num_heads=config.decoder_num_heads,
        mlp_dim=config.decoder_mlp_dim,
    )
    heads = (config.num_multimask_outputs, config.iou_head_depth, config.iou_head_hidden_dim)
    network: type[Sam] = Sam
    if isinstance(config, SamHQConfig):
        network = SamHQ
        decoder: MaskDecoder = MaskDecoderHQ(
            config.prompt_embed_dim, transformer, config.hq_vit_dim, *heads
        )
    else:
        decoder = MaskDecoder(config.prompt_embed_dim, transformer, *heads)
    model = network(
        image_encoder=encoder,
        prompt_encoder=PromptEncoder(
            embed_dim=config.prompt_embed_dim,
            image_embedding_size=(grid, grid),
            input_image_size=(config.image_size, config.image_size),
            mask_in_chans=config.mask_in_chans,
        ),
        mask_decoder=decoder,
        pixel_mean=config.pixel_mean,
        pixel_std=config.pixel_std,
    )
    model.config = config  # type: ignore[assignment]
    variant = find_variant(config)
    model.variant = variant.name if variant else None
    return model.eval()


def load_weights(
    model: Sam, state_dict: dict[str, torch.Tensor], source: str = "state dict"
) -> None:
    """Load ``state_dict`` into ``model`` under strict key and shape checking.

    Only TinyViT's unused classifier (``image_encoder.norm_head.*``, ``image_encoder.head.*``)
    is dropped. Any other missing, unexpected or mis-shaped tensor raises CheckpointError.
    """
    state = {k: v for k, v in state_dict.items() if not k.startswith(UNUSED_PREFIXES)}
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    mismatched = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in expected
        if k in state and state[k].shape != expected[k].shape
    ]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing keys (e.g. {', '.join(missing[:5])})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected keys (e.g. {', '.join(unexpected[:5])})")
    if mismatched:
        problems.append(f"{len(mismatched)} shape mismatches (e.g. {'; '.join(mismatched[:3])})")
    if problems:
        raise CheckpointError(f"{source} does not fit the model: " + "; ".join(problems))
    bad = [k for k, v in state.items() if v.is_floating_point() and not bool(v.isfinite().all())]
    if bad:
        raise CheckpointError(
            f"{source} holds NaN or infinite weights in {len(bad)} tensor(s) (e.g. "
            f"{', '.join(bad[:3])}); the file is damaged or came from a diverged training run"
        )
    model.load_state_dict(state, strict=True)


def build_sam(
    checkpoint: str | os.PathLike[str] | None = None, *, config: SamConfig | None = None
) -> Sam:
    """Build SAM from a checkpoint path or a model name, recognising the architecture by content.

    ``checkpoint`` may be a file (Meta's ``.pth``, MobileSAM's ``mobile_sam.pt``, Ultralytics'
    ``sam_b.pt`` ..., renamed or fine-tuned copies) or a known name (``sam_b``, ``vit_t``,
    ``mobile_sam.pt``...), which is fetched into the cache on first use. With ``config`` and no
    checkpoint, an untrained network of that architecture is returned.
    """
    from samkit import weights

    if checkpoint is None:
        if config is None:
            raise ArgumentError("build_sam needs a checkpoint (path or model name) or a config")
        return build_from_config(config)
    if not isinstance(checkpoint, (str, os.PathLike)):
        raise CheckpointError(
            f"checkpoint must be a file path or a model name such as 'sam_b' or 'mobile_sam', "
            f"got {type(checkpoint).__name__} {checkpoint!r}"
        )
    path = weights.resolve_checkpoint(checkpoint)
    state = from_hf_layout(weights.load_state_dict(path))
    inferred = infer_config(state)
    if config is not None and config != inferred:
        raise CheckpointError(
            f"{path} holds a {describe(inferred)} model, not the requested {describe(config)}"
        )
    model = build_from_config(config or inferred)
    load_weights(model, state, source=str(path))
    return model


def describe(config: SamConfig) -> str:
    variant = find_variant(config)
    if variant is not None:
        return variant.name
    return f"custom {config.encoder.kind}"


def _registry_builder(name: str) -> Callable[..., Sam]:
    config = VARIANTS[name].config

    def build(checkpoint: str | os.PathLike[str] | None = None) -> Sam:
        if checkpoint is None:
            return build_from_config(config)
        return build_sam(checkpoint, config=config)

    build.__name__ = f"build_{name}"
    build.__doc__ = f"Build {VARIANTS[name].description}; untrained when no checkpoint is given."
    return build


def _make_registry() -> dict[str, Callable[..., Sam]]:
    registry: dict[str, Callable[..., Sam]] = {}
    for name, variant in VARIANTS.items():
        builder = _registry_builder(name)
        registry[name] = builder
        for alias in variant.aliases:
            registry[alias] = builder
    return registry


sam_model_registry: dict[str, Callable[..., Sam]] = _make_registry()
"""Meta-style registry: ``sam_model_registry["vit_b"](checkpoint=path)``."""

__all__ = ["build_from_config", "build_sam", "get_variant", "load_weights", "sam_model_registry"]
