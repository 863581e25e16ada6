"""Image embeddings kept for the annotator: an in-memory LRU in front of one file per image.

An entry is the predictor's :class:`~samkit.predictor.ImageState` (features (1, 256, E, E)
float32, original and input sizes). On disk it is ``<root>/<model_key>/<image_key>.npz``,
written atomically, so a restarted server decodes the first click of an image it has seen
without running the encoder again. ``model_key`` names the weights; entries of other weights
are never returned.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from samkit.io_utils import atomic_write_bytes

if TYPE_CHECKING:
    from samkit.predictor import ImageState

__all__ = ["EmbeddingCache", "file_key"]

logger = logging.getLogger("samkit")


def file_key(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """A content key of a file: sha256 of its size, first and last ``chunk`` bytes (cheap for
    multi-GB checkpoints, exact for images of up to 2 * ``chunk`` bytes)."""
    p = Path(path)
    size = p.stat().st_size
    h = hashlib.sha256(str(size).encode())
    with p.open("rb") as f:
        h.update(f.read(chunk))
        if size > chunk:
            f.seek(max(chunk, size - chunk))
            h.update(f.read(chunk))
    return h.hexdigest()[:24]


class EmbeddingCache:
    """Thread-safe LRU of :class:`ImageState` (``memory_items`` entries) over a disk folder.

    Args:
        root: folder for the ``.npz`` files, or None to keep embeddings in memory only.
        model_key: identifies the weights (e.g. :func:`file_key` of the checkpoint).
        memory_items: entries kept in memory (each ~4 MB for a 1024-input model).
    """

    def __init__(
        self, root: str | os.PathLike[str] | None, model_key: str, memory_items: int = 16
    ) -> None:
        if memory_items < 1:
            raise ValueError(f"memory_items must be >= 1, got {memory_items}")
        self.folder = None if root is None else Path(root) / model_key
        self.memory_items = int(memory_items)
        self._items: OrderedDict[str, ImageState] = OrderedDict()
        self._lock = threading.Lock()

    def _path(self, key: str) -> Path | None:
        return None if self.folder is None else self.folder / f"{key}.npz"

    def get(self, key: str) -> ImageState | None:
        """The cached state of ``key`` (memory first, then disk), or None."""
        with self._lock:
            state = self._items.get(key)
            if state is not None:
                self._items.move_to_end(key)
                return state
        path = self._path(key)
        if path is None or not path.is_file():
            return None
        try:
            state = _load(path)
        except (OSError, ValueError, KeyError) as exc:  # a damaged file is re-encoded
            logger.warning("ignoring unreadable embedding %s (%s)", path, exc)
            return None
        self._remember(key, state)
        return state

    def put(self, key: str, state: ImageState) -> None:
        """Keep ``state`` in memory and write it to disk (atomically)."""
        self._remember(key, state)
        path = self._path(key)
        if path is not None:
            atomic_write_bytes(path, _dump(state))

    def __contains__(self, key: str) -> bool:
        with self._lock:
            if key in self._items:
                return True
        path = self._path(key)
        return path is not None and path.is_file()

    def _remember(self, key: str, state: ImageState) -> None:
        with self._lock:
            self._items[key] = state
            self._items.move_to_end(key)
            while len(self._items) > self.memory_items:
                self._items.popitem(last=False)


def _dump(state: ImageState) -> bytes:
    buf = io.BytesIO()
    np.savez(
        buf,
        features=state.features.detach().float().cpu().numpy(),
        original_size=np.asarray(state.original_size, np.int64),
        input_size=np.asarray(state.input_size, np.int64),
    )
    return buf.getvalue()


def _load(path: Path) -> ImageState:
    import torch

    from samkit.predictor import ImageState

    with np.load(path) as data:
        features = torch.from_numpy(np.array(data["features"], np.float32))
        orig = tuple(int(v) for v in data["original_size"])
        inp = tuple(int(v) for v in data["input_size"])
    if features.ndim != 4 or len(orig) != 2 or len(inp) != 2:
        raise ValueError("unexpected shapes")
    return ImageState(features, (orig[0], orig[1]), (inp[0], inp[1]))
