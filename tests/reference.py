"""Helpers shared by the parity tests: reference models from Meta's segment-anything and the
MobileSAM package, seeded random weights in the official checkpoint format, and test images."""

from __future__ import annotations

import warnings
from functools import partial
from pathlib import Path

import numpy as np
import torch

from samkit.registry import SamConfig, ViTConfig

SMALL_VIT = ViTConfig(embed_dim=96, depth=4, num_heads=4, global_attn_indexes=(1, 3))
SMALL_CONFIG = SamConfig(encoder=SMALL_VIT)


def reference_vit(config: ViTConfig) -> torch.nn.Module:
    """Meta's Sam with the given ViT encoder config (reduced or full)."""
    from segment_anything.modeling import (
        ImageEncoderViT,
        MaskDecoder,
        PromptEncoder,
        Sam,
        TwoWayTransformer,
    )

    return Sam(
        image_encoder=ImageEncoderViT(
            depth=config.depth,
            embed_dim=config.embed_dim,
            img_size=config.img_size,
            mlp_ratio=config.mlp_ratio,
            norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
            num_heads=config.num_heads,
            patch_size=config.patch_size,
            qkv_bias=True,
            use_rel_pos=True,
            global_attn_indexes=config.global_attn_indexes,
            window_size=config.window_size,
            out_chans=256,
        ),
        prompt_encoder=PromptEncoder(
            embed_dim=256,
            image_embedding_size=(config.img_size // 16, config.img_size // 16),
            input_image_size=(config.img_size, config.img_size),
            mask_in_chans=16,
        ),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(depth=2, embedding_dim=256, mlp_dim=2048, num_heads=8),
            transformer_dim=256,
            iou_head_depth=3,
            iou_head_hidden_dim=256,
        ),
        pixel_mean=[123.675, 116.28, 103.53],
        pixel_std=[58.395, 57.12, 57.375],
    ).eval()


def reference_mobile_sam() -> torch.nn.Module:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from mobile_sam import sam_model_registry

        return sam_model_registry["vit_t"]().eval()


def randomize(model: torch.nn.Module, seed: int) -> dict[str, torch.Tensor]:
    """Seeded weights that exercise every parameter (zero-initialised ones included).

    Returns the state dict (official key names) after loading it into ``model``. Call
    ``model.eval()`` afterwards for MobileSAM, whose attention caches its bias on eval().
    """
    gen = torch.Generator().manual_seed(seed)
    state = model.state_dict()
    for key, value in state.items():
        if not value.dtype.is_floating_point:
            continue
        noise = torch.randn(value.shape, generator=gen)
        if key.endswith("running_var"):
            state[key] = 0.5 + torch.rand(value.shape, generator=gen)
        elif key.endswith("running_mean"):
            state[key] = 0.1 * noise
        elif (
            value.ndim <= 1
            and (
                "norm" in key
                or ".bn." in key
                or key.endswith(".1.weight")
                or key.endswith(".4.weight")
            )
            and key.endswith("weight")
        ):
            state[key] = 1.0 + 0.1 * noise
        elif value.ndim <= 1:
            state[key] = 0.02 * noise
        else:
            fan_in = max(1, value[0].numel())
            scale = 1.0 / fan_in**0.5
            if "rel_pos" in key or "pos_embed" in key or "attention_biases" in key:
                scale = 0.1
            if "gaussian_matrix" in key:
                scale = 1.0
            state[key] = noise * scale
    model.load_state_dict(state)
    return state


def randomize_batchnorm(module: torch.nn.Module, gen: torch.Generator) -> None:
    """Non-trivial running statistics and affine weights for every BatchNorm2d in ``module``
    (so that folding them into the convolutions is exercised)."""
    for bn in module.modules():
        if isinstance(bn, torch.nn.BatchNorm2d):
            bn.running_mean.normal_(0, 0.1, generator=gen)
            bn.running_var.uniform_(0.5, 1.5, generator=gen)
            bn.weight.data.normal_(1, 0.1, generator=gen)
            bn.bias.data.normal_(0, 0.1, generator=gen)


def save_checkpoint(state: dict[str, torch.Tensor], path: Path) -> Path:
    torch.save(state, path)
    return path


def make_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A smooth synthetic RGB image with shapes (uint8 (H, W, 3))."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    img = np.zeros((height, width, 3), dtype=np.float32)
    img[..., 0] = 127 + 100 * np.sin(xx / 37.0)
    img[..., 1] = 127 + 100 * np.cos(yy / 23.0)
    img[..., 2] = 127 + 80 * np.sin((xx + yy) / 51.0)
    for _ in range(6):
        cy, cx = rng.uniform(0, height), rng.uniform(0, width)
        r = rng.uniform(0.05, 0.25) * min(height, width)
        color = rng.uniform(0, 255, size=3)
        inside = (yy - cy) ** 2 + (xx - cx) ** 2 < r**2
        img[inside] = color
    img += rng.normal(0, 4, size=img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)
