"""Teacher-embedding cache for distillation: each (image, flip) encoded by the teacher once,
stored on disk in fp16 shards with an index, and read back by every epoch and every later run.

Layout of a cache folder::

    index.json          format, teacher key and name, input size, embedding shape, entries
    shard_00000.npy     (n, C, g, g) float16, one row per entry, in the index's order
    shard_00001.npy ...

An entry is keyed by ``<image content hash>:<flip>`` (flip 0 or 1) and records the image path
it was first read from, its shard and row. Shards and the index are written atomically (a shard
first, then the index that names it), so a killed caching pass loses at most the shard it was
filling and the next pass continues from the entries the index lists. A folder whose index
records another teacher (or another input size) is refused: its embeddings are not this
teacher's targets.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from samkit.embeddings import EmbeddingStore
from samkit.errors import SamkitError, UnknownKeyError
from samkit.io_utils import atomic_write_bytes, atomic_write_text

__all__ = ["CacheMismatchError", "FillReport", "ImageSample", "TeacherCache", "fill"]

FORMAT = 1


class CacheMismatchError(SamkitError):
    """A cache folder built for another teacher (or input size) than the one asked for."""


class ImageSample(Protocol):
    """What the cache reads: :class:`samkit.datasets.Sample` satisfies it."""

    @property
    def path(self) -> Path: ...

    def image(self) -> np.ndarray: ...


def entry_key(image_hash: str, flip: bool) -> str:
    return f"{image_hash}:{int(flip)}"


@dataclass
class FillReport:
    """What a caching pass did: entries computed by the teacher, found in the cache, and
    images that could not be read (path, reason)."""

    computed: int = 0
    reused: int = 0
    problems: list[tuple[str, str]] = field(default_factory=list)


class TeacherCache:
    """Teacher image embeddings on disk, (C, g, g) float16 per (image content hash, flip).

    ``root``: the cache folder (created). ``teacher``: :func:`samkit.embeddings.model_key` of
    the teacher; ``teacher_name`` is for messages only. ``image_size``: the model input side S the
    embeddings were computed at. ``embed_shape``: (C, g, g). ``shard_size``: entries per shard
    (64 x 64 x 256 fp16 is 2 MiB per entry).

    Raises:
        CacheMismatchError: ``root`` holds a cache of another teacher, input size or shape.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        teacher: str,
        *,
        teacher_name: str = "",
        image_size: int,
        embed_shape: tuple[int, int, int],
        shard_size: int = 32,
    ) -> None:
        if shard_size < 1:
            raise SamkitError(f"shard_size must be >= 1, got {shard_size}")
        self.root = Path(root)
        self.teacher = teacher
        self.teacher_name = teacher_name
        self.image_size = int(image_size)
        self.embed_shape = tuple(int(s) for s in embed_shape)
        self.shard_size = shard_size
        self._shards: list[str] = []
        self._entries: dict[str, tuple[int, int, str]] = {}  # key -> (shard, row, path)
        self._open_shards: dict[int, np.ndarray] = {}
        self._pending: list[tuple[str, str, np.ndarray]] = []
        self._load_index()

    # ------------------------------------------------------------------ index
    @property
    def index_path(self) -> Path:
        return self.root / "index.json"

    def _load_index(self) -> None:
        if not self.index_path.is_file():
            return
        try:
            index = json.loads(self.index_path.read_text())
        except (OSError, ValueError) as exc:
            raise CacheMismatchError(
                f"cache index {self.index_path} is unreadable ({exc}); use another cache folder"
            ) from exc
        theirs = index.get("teacher", "?")
        if theirs != self.teacher:
            raise CacheMismatchError(
                f"the teacher-embedding cache at {self.root} was built with teacher "
                f"{index.get('teacher_name') or '?'} (key {theirs[:16]}), not with this run's "
                f"teacher {self.teacher_name or '?'} (key {self.teacher[:16]}); pass another "
                "cache= folder or delete this one"
            )
        for name, ours in (("image_size", self.image_size), ("embed_shape", self.embed_shape)):
            value = index.get(name)
            value = tuple(value) if isinstance(value, list) else value
            if value != ours:
                raise CacheMismatchError(
                    f"the teacher-embedding cache at {self.root} holds {name} {value}, "
                    f"this run needs {ours}; pass another cache= folder"
                )
        self._shards = list(index["shards"])
        for key, (shard, row, path) in index["entries"].items():
            self._entries[key] = (int(shard), int(row), str(path))

    def _write_index(self) -> None:
        index: dict[str, Any] = {
            "format": FORMAT,
            "teacher": self.teacher,
            "teacher_name": self.teacher_name,
            "image_size": self.image_size,
            "embed_shape": list(self.embed_shape),
            "dtype": "float16",
            "shards": self._shards,
            "entries": {k: list(v) for k, v in self._entries.items()},
        }
        atomic_write_text(self.index_path, json.dumps(index))

    # ------------------------------------------------------------------ reading
    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries or any(k == key for k, _, _ in self._pending)

    def get(self, image_hash: str, flip: bool = False) -> np.ndarray:
        """The teacher embedding (C, g, g) float16 (read-only, memory-mapped) of an entry."""
        key = entry_key(image_hash, flip)
        if key not in self._entries:
            raise UnknownKeyError(f"no teacher embedding cached for {key} in {self.root}")
        shard, row, _ = self._entries[key]
        if shard not in self._open_shards:
            self._open_shards[shard] = np.load(self.root / self._shards[shard], mmap_mode="r")
        return self._open_shards[shard][row]

    # ------------------------------------------------------------------ writing
    def add(self, image_hash: str, flip: bool, path: str, embedding: np.ndarray) -> None:
        """Queue one (C, g, g) embedding; a shard is written every ``shard_size`` entries."""
        if tuple(embedding.shape) != self.embed_shape:
            raise SamkitError(
                f"embedding must have shape {self.embed_shape}, got {tuple(embedding.shape)}"
            )
        self._pending.append((entry_key(image_hash, flip), path, embedding.astype(np.float16)))
        if len(self._pending) >= self.shard_size:
            self.flush()

    def flush(self) -> None:
        """Write the queued entries as one shard, then the index that lists them."""
        if not self._pending:
            return
        number = len(self._shards)
        name = f"shard_{number:05d}.npy"
        buffer = io.BytesIO()
        np.save(buffer, np.stack([e for _, _, e in self._pending]))
        atomic_write_bytes(self.root / name, buffer.getvalue())
        self._shards.append(name)
        for row, (key, path, _) in enumerate(self._pending):
            self._entries[key] = (number, row, path)
        self._pending = []
        self._write_index()


def fill(
    cache: TeacherCache,
    samples: Iterable[ImageSample],
    encode: Callable[[list[np.ndarray], bool], np.ndarray],
    *,
    flips: Sequence[bool] = (False,),
    batch_size: int = 4,
    progress: Callable[[int], None] | None = None,
) -> tuple[FillReport, list[str]]:
    """Encode every (sample, flip) the cache lacks with ``encode`` and store it.

    ``encode(images, flip)`` takes (H, W, 3) uint8 RGB images and returns (n, C, g, g)
    embeddings of the images flipped left-right when ``flip`` (the flip is applied to the
    image before the teacher sees it). Returns the report and each sample's content hash
    ("" for a sample that could not be read). ``progress(n)`` is called as images finish.
    """
    report = FillReport()
    hashes: list[str] = []
    todo: dict[bool, list[tuple[str, str, np.ndarray]]] = {f: [] for f in flips}
    for sample in samples:
        try:
            digest = EmbeddingStore.key(sample.path)
            missing = [f for f in flips if entry_key(digest, f) not in cache]
            image = sample.image() if missing else None
        except (OSError, ValueError, SamkitError) as exc:
            report.problems.append((str(sample.path), str(exc)))
            hashes.append("")
            continue
        hashes.append(digest)
        report.reused += len(flips) - len(missing)
        for f in missing:
            todo[f].append((digest, str(sample.path), image))  # type: ignore[arg-type]
            if len(todo[f]) >= batch_size:
                report.computed += _encode_batch(cache, todo[f], encode, f, progress)
                todo[f] = []
    for f, rest in todo.items():
        if rest:
            report.computed += _encode_batch(cache, rest, encode, f, progress)
    cache.flush()
    return report, hashes


def _encode_batch(
    cache: TeacherCache,
    batch: list[tuple[str, str, np.ndarray]],
    encode: Callable[[list[np.ndarray], bool], np.ndarray],
    flip: bool,
    progress: Callable[[int], None] | None,
) -> int:
    embeddings = encode([image for _, _, image in batch], flip)
    for (digest, path, _), embedding in zip(batch, embeddings, strict=True):
        cache.add(digest, flip, path, embedding)
    if progress is not None:
        progress(len(batch))
    return len(batch)
