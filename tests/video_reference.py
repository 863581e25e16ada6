"""Helpers for the video parity tests: a generated video (shapes moving over a textured
background, one leaving and re-entering the frame) written as numbered JPEGs, and Meta's
``SAM2VideoPredictor`` built from its SAM 2.1 config with seeded random weights."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

from reference import make_image, randomize
from sam2_reference import META_CONFIGS


def write_video(folder: Path, frames: int = 8, height: int = 96, width: int = 128) -> Path:
    """Numbered JPEGs (00000.jpg ...): a disc moving right (leaving at the right edge from
    about frame 5), a square moving down, over a smooth background."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    background = make_image(height, width, seed=1)
    yy, xx = np.mgrid[0:height, 0:width]
    for t in range(frames):
        img = background.copy()
        cx, cy = 30 + 22 * t, 40
        img[(xx - cx) ** 2 + (yy - cy) ** 2 < 15**2] = (250, 30, 30)
        sx, sy = 20, 10 + 6 * t
        img[(abs(xx - sx) < 10) & (abs(yy - sy) < 10)] = (20, 40, 240)
        Image.fromarray(img).save(folder / f"{t:05d}.jpg", quality=95)
    return folder


def meta_video_predictor(image_size: int = 128, seed: int = 0) -> torch.nn.Module:
    """Meta's video predictor (post-processing on, as its builder's default) on the tiny
    SAM 2.1 config at ``image_size`` with seeded random weights. Its memory attention casts
    the bfloat16 memory it stores to float32 on the way in (exact for the stored values; on a
    CPU Meta's own run fails with a dtype error for an object whose memory is all bfloat16)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from sam2.build_sam import build_sam2_video_predictor

        model = build_sam2_video_predictor(
            META_CONFIGS["tiny"],
            None,
            device="cpu",
            hydra_overrides_extra=[f"++model.image_size={image_size}"],
        )
    randomize(model, seed)
    attention = model.memory_attention
    forward = attention.forward

    def float_memory(curr, memory, curr_pos=None, memory_pos=None, num_obj_ptr_tokens=0):
        return forward(curr, memory.float(), curr_pos, memory_pos.float(), num_obj_ptr_tokens)

    attention.forward = float_memory
    return model.eval()
