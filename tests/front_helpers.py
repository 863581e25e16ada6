"""Shared setup of the front tests: random-weight checkpoints saved to disk and small images.

``small``: the reduced ViT (SMALL_CONFIG, 1024 input, 256x256 low-res logits) for exactness.
``tiny``: a 256-input ViT (16x16 embedding, 64x64 logits) that encodes in milliseconds, for the
CLI, stream and video tests where only the plumbing is under test.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import cv2
import numpy as np
import torch

from reference import make_image, randomize
from samkit.build import build_from_config
from samkit.registry import SamConfig, ViTConfig

TINY_CONFIG = SamConfig(
    encoder=ViTConfig(
        embed_dim=32, depth=2, num_heads=2, global_attn_indexes=(1,), img_size=256, window_size=4
    )
)

HAS_EVERYTHING = importlib.util.find_spec("samkit.automatic") is not None

# Settings that keep segment everything quick and its filters open, so masks come out.
QUICK_EVERYTHING = {"points_per_side": 4, "pred_iou_thresh": 0.0, "stability_score_thresh": 0.0}


def save_random_checkpoint(path: Path, config: SamConfig, seed: int = 0) -> Path:
    """A seeded random checkpoint in the official format at ``path``."""
    model = build_from_config(config)
    state = randomize(model, seed)
    torch.save(state, path)
    return path


def write_image(path: Path, height: int, width: int, seed: int = 0) -> np.ndarray:
    """Write a synthetic image (PNG / JPEG by suffix); returns it as RGB."""
    rgb = make_image(height, width, seed)
    if not cv2.imwrite(str(path), rgb[:, :, ::-1]):
        raise RuntimeError(f"could not write {path}")
    return rgb
