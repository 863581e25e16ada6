"""Shared setup of the fine-tuning tests: a reduced SAM that trains in seconds on CPU and a
generated shapes dataset split into train / held-out."""

from __future__ import annotations

from pathlib import Path

import torch

from samkit.registry import SamConfig, ViTConfig
from shapes_data import make_shapes_dataset

# 256-pixel input (16 x 16 embedding grid, 64 x 64 low-res logits), a 2-block ViT and a
# 64-wide decoder: every part of SAM, at a size where one training step is ~50 ms of CPU.
TINY_TRAIN_CONFIG = SamConfig(
    encoder=ViTConfig(
        embed_dim=32,
        depth=2,
        num_heads=2,
        global_attn_indexes=(1,),
        img_size=256,
        window_size=4,
        out_chans=64,
    ),
    prompt_embed_dim=64,
    decoder_mlp_dim=256,
    iou_head_hidden_dim=64,
)


def shapes_split(root: Path, n_train: int, n_val: int, seed: int = 0) -> tuple[Path, Path]:
    """COCO shapes datasets (train, held-out) under ``root``; returns the two JSON paths."""
    train = make_shapes_dataset(root / "train", n_train, seed=seed)
    val = make_shapes_dataset(root / "val", n_val, seed=seed + 1000)
    return train, val


def one_thread() -> int:
    """Set torch to one intra-op thread (on a shared, loaded CPU, OpenMP's second thread
    spinning costs more than it brings for these tiny ops); returns the previous count."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    return before


def box_fill_miou(data: Path) -> float:
    """The "fill the box" baseline: mean IoU of each tight GT box's rectangle with its mask."""
    import numpy as np

    from samkit.datasets import open_dataset

    ious = []
    for sample in open_dataset(data):
        for inst in sample.instances:
            x0, y0, x1, y1 = (int(v) for v in inst.box)
            rect = np.zeros_like(inst.mask)
            rect[y0 : y1 + 1, x0 : x1 + 1] = True
            ious.append((rect & inst.mask).sum() / (rect | inst.mask).sum())
    return float(np.mean(ious))
