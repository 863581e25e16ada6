"""Builders: a :class:`~samkit.sam2.config.Sam2Config` becomes a :class:`~samkit.modeling.sam2.Sam2`;
``build_sam2_model`` loads Meta's / Ultralytics' checkpoints (``{"model": state_dict}``),
recognising the architecture from the tensors; ``build_sam2`` is Meta's signature."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from samkit.errors import ArgumentError, CheckpointError
from samkit.modeling.common import MLP
from samkit.modeling.fpn import Sam2ImageEncoder
from samkit.modeling.memory import MemoryAttention, MemoryEncoder
from samkit.modeling.prompt_encoder import PromptEncoder
from samkit.modeling.sam2 import Sam2
from samkit.modeling.sam2_decoder import Sam2MaskDecoder
from samkit.modeling.transformer import TwoWayTransformer
from samkit.sam2.architecture import infer_sam2_config, is_sam2_state
from samkit.sam2.config import Sam2Config, video_tensor_shapes
from samkit.sam2.variants import find_sam2_variant, variant_of

__all__ = ["build_sam2", "build_sam2_from_config", "build_sam2_model", "load_sam2_state"]


def build_sam2_from_config(config: Sam2Config, dynamic_multimask: bool = True) -> Sam2:
    """An untrained network of this architecture, in eval mode. ``dynamic_multimask``: the
    single-mask fallback by stability (Meta's ``apply_postprocessing``, on by default)."""
    dim = config.prompt_embed_dim
    grid = config.image_embedding_size
    decoder = Sam2MaskDecoder(
        transformer_dim=dim,
        transformer=TwoWayTransformer(
            depth=config.decoder_depth,
            embedding_dim=dim,
            num_heads=config.decoder_num_heads,
            mlp_dim=config.decoder_mlp_dim,
            mlp_keys="layers",
        ),
        num_multimask_outputs=config.num_multimask_outputs,
        iou_head_depth=config.iou_head_depth,
        iou_head_hidden_dim=config.iou_head_hidden_dim,
        use_high_res_features=config.use_high_res_features,
        iou_prediction_use_sigmoid=config.iou_prediction_use_sigmoid,
        pred_obj_scores=config.pred_obj_scores,
        pred_obj_scores_mlp=config.pred_obj_scores_mlp,
        dynamic_multimask_via_stability=dynamic_multimask,
    )
    model = Sam2(
        image_encoder=Sam2ImageEncoder(config.trunk, config.neck),
        prompt_encoder=PromptEncoder(
            embed_dim=dim,
            image_embedding_size=(grid, grid),
            input_image_size=(config.image_size, config.image_size),
            mask_in_chans=config.mask_in_chans,
        ),
        mask_decoder=decoder,
        video_tensors=video_tensor_shapes(config),
        image_size=config.image_size,
        pixel_mean=config.pixel_mean,
        pixel_std=config.pixel_std,
    )
    attach_video_modules(model, config)
    model.config = config
    variant = variant_of(config)
    model.variant = variant.name if variant else None
    return model.eval()


def attach_video_modules(model: Sam2, config: Sam2Config) -> None:
    """Replace the kept video tensors by the working modules of the same names and shapes:
    memory attention, memory encoder, object-pointer projections and the mask downsampler."""
    d, m = config.prompt_embed_dim, config.mem_dim
    model.memory_attention = MemoryAttention(
        d, m, config.memory_attention_layers, config.memory_ffn_dim
    )
    model.memory_encoder = MemoryEncoder(d, m, config.fuser_layers)
    model.obj_ptr_proj = MLP(d, d, d, 3)
    if config.version != "2.0":
        model.obj_ptr_tpos_proj = nn.Linear(d, m)
    model.mask_downsample = nn.Conv2d(1, 1, kernel_size=4, stride=4)


def load_sam2_state(model: Sam2, state_dict: dict[str, torch.Tensor], source: str) -> None:
    """Strict load: every tensor of the network present with its shape, nothing left over."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    mismatched = [
        f"{k}: checkpoint {tuple(state_dict[k].shape)} vs model {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state_dict and state_dict[k].shape != v.shape
    ]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing keys (e.g. {', '.join(missing[:5])})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected keys (e.g. {', '.join(unexpected[:5])})")
    if mismatched:
        problems.append(f"{len(mismatched)} shape mismatches (e.g. {'; '.join(mismatched[:3])})")
    if problems:
        raise CheckpointError(f"{source} does not fit the SAM 2 network: " + "; ".join(problems))
    model.load_state_dict(state_dict, strict=True)


def build_sam2_model(
    checkpoint: str | os.PathLike[str], device: str | torch.device = "cpu"
) -> Sam2:
    """Build SAM 2 / 2.1 from a checkpoint file or a published name, recognised by content."""
    from samkit import weights

    path = weights.resolve_checkpoint(checkpoint)
    state = weights.load_state_dict(path)
    if not is_sam2_state(state):
        raise CheckpointError(f"{path} is not a SAM 2 / SAM 2.1 checkpoint")
    model = build_sam2_from_config(infer_sam2_config(state))
    load_sam2_state(model, state, str(path))
    return model.to(device)


def build_sam2(
    config_file: str,
    ckpt_path: str | os.PathLike[str] | None = None,
    device: str | torch.device = "cuda",
    mode: str = "eval",
    hydra_overrides_extra: Sequence[str] = (),
    apply_postprocessing: bool = True,
    **kwargs: Any,
) -> Sam2:
    """Meta's ``sam2.build_sam.build_sam2``: ``config_file`` one of Meta's config names
    (``configs/sam2.1/sam2.1_hiera_t.yaml``, ``sam2.1_hiera_l.yaml``...), ``ckpt_path`` its
    checkpoint (None: untrained). ``apply_postprocessing`` switches the decoder's dynamic
    single-mask fallback (Meta's default, on). Hydra overrides are not supported.
    """
    if hydra_overrides_extra:
        raise ArgumentError("build_sam2: hydra_overrides_extra is not supported by samkit")
    if mode not in ("eval", "train"):
        raise ArgumentError(f"build_sam2: mode must be 'eval' or 'train', got {mode!r}")
    variant = find_sam2_variant(str(config_file))
    if variant is None:
        raise ArgumentError(
            f"build_sam2: unknown config {config_file!r}; Meta's names are "
            "configs/sam2.1/sam2.1_hiera_{t,s,b+,l}.yaml and configs/sam2/sam2_hiera_{t,s,b+,l}.yaml"
        )
    model = build_sam2_from_config(variant.config, dynamic_multimask=apply_postprocessing)
    if ckpt_path is not None:
        from samkit import weights

        path = weights.resolve_checkpoint(ckpt_path)
        state = weights.load_state_dict(path)
        inferred = infer_sam2_config(state)
        if inferred != variant.config:
            raise CheckpointError(
                f"{path} holds a {inferred.version} {inferred.trunk.embed_dim}-wide network, "
                f"not the one {config_file!r} describes"
            )
        load_sam2_state(model, state, str(path))
    model = model.to(device)
    return model.train() if mode == "train" else model.eval()
