"""Builders: a :class:`~samkit.registry.SamConfig` becomes a :class:`~samkit.modeling.Sam`;
``build_sam`` loads any official or renamed checkpoint, recognising it by content."""

from __future__ import annotations

import os
from collections.abc import Callable

import torch

from samkit.errors import ArgumentError, CheckpointError
from samkit.families import family_for_config, recognize
from samkit.families.sam1 import UNUSED_PREFIXES
from samkit.modeling import Sam
from samkit.registry import VARIANTS, SamConfig, get_variant

__all__ = [
    "UNUSED_PREFIXES",
    "build_from_config",
    "build_sam",
    "get_variant",
    "load_weights",
    "sam_model_registry",
]


def build_from_config(config: SamConfig) -> Sam:
    """An untrained network of the given architecture, in eval mode, built by the family that
    owns ``config`` (:func:`samkit.families.family_for_config`)."""
    network: Sam = family_for_config(config).build(config)
    return network


def load_weights(
    model: Sam, state_dict: dict[str, torch.Tensor], source: str = "state dict"
) -> None:
    """Load ``state_dict`` into ``model`` under strict key and shape checking.

    The network's family filters the keys first (SAM-1 drops only TinyViT's unused classifier,
    ``image_encoder.norm_head.*`` / ``image_encoder.head.*``). Any other missing, unexpected or
    mis-shaped tensor raises CheckpointError.
    """
    from samkit.families import family_of

    state = family_of(model).filter_keys(state_dict)
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
    state = weights.load_state_dict(path)
    _, inferred, state = recognize(state)
    if config is not None and config != inferred:
        raise CheckpointError(
            f"{path} holds a {describe(inferred)} model, not the requested {describe(config)}"
        )
    model = build_from_config(config or inferred)
    load_weights(model, state, source=str(path))
    return model


def describe(config: SamConfig) -> str:
    """A short name of ``config``'s architecture (the variant's, else "custom <kind>")."""
    return family_for_config(config).name_of(config)


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
