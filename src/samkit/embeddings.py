"""The embedding cache: one encoder pass per image and model, in memory and optionally on disk.

:class:`EmbeddingStore` maps an image key (a content hash, :meth:`EmbeddingStore.key`) to the
engine's image state -- what ``engine.get_state()`` returns and ``engine.set_state()`` takes:
``features`` ``(1, 256, g, g)`` plus ``original_size`` / ``input_size`` ``(H, W)``. Memory
entries are kept as given (LRU, ``memory_items``); disk entries (``root`` set) are one ``.npz``
per image under ``root/<model_key>/``, written atomically, features stored as ``dtype``
(float32 by default: lossless for fp32 engines) and read back as a :class:`StoredState`, which
both the torch and the ONNX Runtime engines accept.

``model_key`` must identify weights, architecture and encoder precision (see
:func:`model_key`); a store opened with another key never returns the other model's entries.

Used by ``samkit val`` (``cache=path``), the trainer's frozen-encoder cache and labelling;
:func:`encode_cached` is the one way to put an image into an engine through the store.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from samkit.errors import ArgumentError, SamkitError
from samkit.families.state import ImageState, state_from_arrays, state_to_arrays
from samkit.io_utils import atomic_write_bytes

__all__ = ["EmbeddingStore", "StoredState", "encode_cached", "model_key"]

_KEY = re.compile(r"^[A-Za-z0-9_.\-]+$")


StoredState = ImageState
"""An image state read from disk (NumPy features): the one :class:`ImageState` type."""


def _hash_file(h: Any, path: Path) -> None:
    with open(path, "rb") as f:
        while block := f.read(1 << 22):
            h.update(block)


class EmbeddingStore:
    """Image states by image key, for one model.

    Args:
        root: folder for the disk cache, or None for memory only.
        model_key: identifies weights + config + encoder precision (:func:`model_key`);
            letters, digits, ``_.-`` only (it names a folder).
        dtype: storage dtype on disk, ``"float32"`` (lossless) or ``"float16"`` (half the
            space; features then differ by fp16 rounding).
        memory_items: states kept in memory (least recently used dropped first); 0 disables.

    ``hits`` / ``misses`` count :meth:`get` results.
    """

    def __init__(
        self,
        root: str | os.PathLike[str] | None,
        model_key: str,
        *,
        dtype: str = "float32",
        memory_items: int = 64,
    ) -> None:
        if not isinstance(model_key, str) or not _KEY.match(model_key):
            raise ArgumentError(
                f"model_key must be a non-empty [A-Za-z0-9_.-] string, got {model_key!r}"
            )
        if dtype not in ("float32", "float16"):
            raise ArgumentError(f"dtype must be 'float32' or 'float16', got {dtype!r}")
        if isinstance(memory_items, bool) or not isinstance(memory_items, int) or memory_items < 0:
            raise ArgumentError(f"memory_items must be a non-negative int, got {memory_items!r}")
        self.model_key = model_key
        self.folder = None if root is None else Path(root) / model_key
        self.dtype = np.dtype(dtype)
        self.memory_items = memory_items
        self._memory: OrderedDict[str, Any] = OrderedDict()
        self.hits = 0
        self.misses = 0

    @staticmethod
    def key(image: str | os.PathLike[str] | np.ndarray) -> str:
        """Content hash of an image file's bytes, or of an array's shape, dtype and bytes
        (sha256, 32 hex digits)."""
        h = hashlib.sha256()
        if isinstance(image, np.ndarray):
            arr = np.ascontiguousarray(image)
            h.update(f"{arr.shape}{arr.dtype.str}".encode())
            h.update(arr.tobytes())
        else:
            _hash_file(h, Path(image))
        return h.hexdigest()[:32]

    def _path(self, key: str) -> Path | None:
        if self.folder is None:
            return None
        if not _KEY.match(key):
            raise ArgumentError(f"key must be [A-Za-z0-9_.-] (EmbeddingStore.key), got {key!r}")
        return self.folder / f"{key}.npz"

    def _remember(self, key: str, state: Any) -> None:
        if self.memory_items:
            self._memory[key] = state
            self._memory.move_to_end(key)
            while len(self._memory) > self.memory_items:
                self._memory.popitem(last=False)

    def has(self, key: str) -> bool:
        """Whether ``key`` is stored (in memory, or on disk without reading it)."""
        path = self._path(key)
        return key in self._memory or (path is not None and path.is_file())

    def get(self, key: str) -> Any | None:
        """The state stored for ``key``, or None (an unreadable disk entry counts as a miss)."""
        if key in self._memory:
            self._memory.move_to_end(key)
            self.hits += 1
            return self._memory[key]
        path = self._path(key)
        state = None
        if path is not None and path.is_file():
            try:
                with np.load(path) as z:
                    arrays = {k: z[k] for k in z.files}
                arrays["features"] = arrays["features"].astype(np.float32)
                state = state_from_arrays(arrays)
            except (OSError, ValueError, KeyError, SamkitError):
                state = None
        if state is None:
            self.misses += 1
            return None
        self.hits += 1
        self._remember(key, state)
        return state

    def put(self, key: str, state: Any) -> None:
        """Keep ``state`` (an engine's ``get_state()``) for ``key``, in memory and on disk."""
        path = self._path(key)
        self._remember(key, state)
        if path is None:
            return
        buf = io.BytesIO()
        arrays: dict[str, Any] = state_to_arrays(state, self.dtype)
        np.savez(buf, **arrays)
        atomic_write_bytes(path, buf.getvalue())


def encode_cached(engine: Any, store: EmbeddingStore | None, image_rgb: Any, key: str) -> Any:
    """Put an image into ``engine``: ``set_state`` from the store on a hit, else ``set_image``
    ((H, W, 3) uint8 RGB, or a callable returning it, called only on a miss) and store the
    new state. Returns the engine's state."""
    hit = None if store is None else store.get(key)
    if hit is not None:
        engine.set_state(hit)
        return hit
    engine.set_image(image_rgb() if callable(image_rgb) else image_rgb)
    state = engine.get_state()
    if store is not None:
        store.put(key, state)
    return state


def model_key(model: Any, extra: str = "") -> str:
    """A key for :class:`EmbeddingStore` from a :class:`samkit.SAM` (its checkpoint file's
    bytes, or its export folder's encoder, or the weights of an in-memory network), the
    encoder precision and ``extra``; 24 hex digits."""
    h = hashlib.sha256(extra.encode())
    precision = getattr(model, "precision", None)
    # only what changes the features (the encoder's dtype), not batch sizes or threads
    settings = precision.encoder_settings if precision is not None else ()
    h.update(repr([(k, dict(settings).get(k)) for k in ("half", "dtype")]).encode())
    source = getattr(model, "checkpoint", None)
    files: list[Path] = []
    if source is not None and Path(source).is_file():
        files = [Path(source)]
    elif source is not None and Path(source).is_dir():
        files = sorted(p for p in Path(source).iterdir() if p.suffix in (".onnx", ".json"))
    if files:
        for p in files:
            h.update(p.name.encode())
            _hash_file(h, p)
        return h.hexdigest()[:24]
    net = getattr(model, "model", model)
    if net is None:  # a front without a network (model=grabcut): its name is the model
        h.update(str(source).encode())
        return h.hexdigest()[:24]
    for name, tensor in net.state_dict().items():
        h.update(name.encode())
        h.update(tensor.detach().float().cpu().numpy().tobytes())
    return h.hexdigest()[:24]
