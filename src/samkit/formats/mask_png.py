"""Binary mask PNGs: one image per instance, or one instance-id map per image.

Layout under a dataset root (the images in ``<root>/images`` unless given elsewhere):

- ``masks/<image stem>/<name>.png``: one file per instance, nonzero = the object; the
  instance id is ``<image stem>/<name>``;
- ``masks/<image stem>.png``: an instance-id map (8- or 16-bit single channel), 0 = background
  and every other value one instance with id ``<image stem>:<value>``.

Mask PNGs carry no class; instances get the category ``""``. Every mask must have the image's
size; masks of another size are reported and skipped by the reader.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from samkit.errors import ArgumentError, FormatError
from samkit.io_utils import atomic_write_bytes

__all__ = ["instance_mask_files", "read_mask_png", "split_id_map", "write_mask_png"]


def write_mask_png(path: str | os.PathLike[str], mask: np.ndarray) -> Path:
    """Write a ``(H, W)`` mask atomically as an 8-bit PNG (bool: 0 / 255; integer ids up to
    255 as 8 bit, larger as 16 bit)."""
    import cv2

    arr = np.asarray(mask)
    if arr.ndim != 2 or not arr.size:
        raise ArgumentError(f"mask must have shape (H, W) with H, W > 0, got {arr.shape}")
    if arr.dtype == bool:
        arr = arr.astype(np.uint8) * 255
    elif arr.min() < 0 or arr.max() > 65535:
        raise ArgumentError(f"mask instance ids must lie in 0..65535, got {arr.min()}..{arr.max()}")
    else:
        arr = arr.astype(np.uint8 if arr.max() <= 255 else np.uint16)
    ok, buf = cv2.imencode(".png", arr)
    if not ok:  # pragma: no cover - a non-empty 8/16-bit single-channel image always encodes
        raise ValueError(f"could not encode {path} as PNG")
    return atomic_write_bytes(path, buf.tobytes())


def read_mask_png(path: str | os.PathLike[str]) -> np.ndarray:
    """A mask PNG as a ``(H, W)`` integer array (colour PNGs: any nonzero channel counts).

    Raises:
        FormatError: not a readable image (the message names the file).
    """
    import cv2

    arr = cv2.imread(os.fspath(path), cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise FormatError(f"{os.fspath(path)}: not a readable PNG")
    if arr.ndim == 3:
        arr = arr[..., :3].max(axis=2)
    return arr


def split_id_map(ids: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """``(value, mask)`` for every nonzero value of an instance-id map, ascending."""
    values = np.unique(ids)
    return [(int(v), ids == v) for v in values if v != 0]


def instance_mask_files(masks_dir: Path, stem: str) -> list[Path]:
    """The per-instance mask files of image ``stem`` (sorted), or ``[<stem>.png]`` when the
    image has an instance-id map instead; ``[]`` when it has neither."""
    folder = masks_dir / stem
    if folder.is_dir():
        return sorted(p for p in folder.iterdir() if p.suffix.lower() == ".png")
    single = masks_dir / f"{stem}.png"
    return [single] if single.is_file() else []
