"""Per-frame outputs of a tracking run: indexed PNGs in the DAVIS palette (pixel value = the
object's index, 1..N in ``obj_ids`` order, 0 = background)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

__all__ = ["davis_palette", "label_map", "write_indexed_png"]


def davis_palette(n: int = 256) -> np.ndarray:
    """(n, 3) uint8: the PASCAL VOC / DAVIS colour map (index bits spread over R, G, B from
    the most significant bit down: 1 = (128, 0, 0), 2 = (0, 128, 0), 3 = (128, 128, 0)...)."""
    palette = np.zeros((n, 3), dtype=np.uint8)
    for i in range(n):
        c, r, g, b = i, 0, 0, 0
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        palette[i] = (r, g, b)
    return palette


def label_map(video_logits: np.ndarray) -> np.ndarray:
    """(N, 1, H, W) or (N, H, W) logits -> (H, W) uint8: at each pixel the index (1-based) of
    the highest-scoring object whose logit is > 0, else 0."""
    logits = video_logits.reshape(video_logits.shape[0], *video_logits.shape[-2:])
    if logits.shape[0] == 0:
        return np.zeros(logits.shape[-2:], dtype=np.uint8)
    best = logits.argmax(axis=0)
    positive = np.take_along_axis(logits, best[None], axis=0)[0] > 0
    return np.where(positive, best + 1, 0).astype(np.uint8)


def write_indexed_png(path: str | os.PathLike[str], labels: np.ndarray) -> Path:
    """Write (H, W) uint8 labels as a palette PNG; returns the path."""
    from PIL import Image

    image = Image.fromarray(labels.astype(np.uint8), mode="P")
    image.putpalette(davis_palette().reshape(-1).tolist())
    out = Path(path)
    image.save(out)
    return out
