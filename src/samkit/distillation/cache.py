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

Several runs may share one folder at once: each shard gets a name no other run uses, and the
index is updated under a lock (``index.lock``) by merging what is on disk with this run's
entries, so no run reads another's rows as its own. The index records each shard's CRC-32
and size: :func:`fill` checks the shards it reuses, and a damaged one (flipped bytes, cut
short) is named in a warning and its entries computed again.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import uuid
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from samkit.embeddings import EmbeddingStore
from samkit.errors import SamkitError, UnknownKeyError
from samkit.io_utils import atomic_write_bytes, atomic_write_text

__all__ = [
    "CacheDamagedError",
    "CacheMismatchError",
    "FillReport",
    "ImageSample",
    "TeacherCache",
    "fill",
]

logger = logging.getLogger("samkit")

FORMAT = 1


class CacheMismatchError(SamkitError):
    """A cache folder built for another teacher (or input size) than the one asked for."""


class CacheDamagedError(SamkitError):
    """A shard of the cache that is cut short or whose bytes changed since it was written."""


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
        self._shards: dict[str, tuple[str, int]] = {}  # shard name -> (crc32 hex, bytes)
        self._entries: dict[str, tuple[str, int, str]] = {}  # key -> (shard, row, path)
        self._open_shards: dict[str, np.ndarray] = {}
        self._checked: set[str] = set()
        self._pending: list[tuple[str, str, np.ndarray]] = []
        self.root.mkdir(parents=True, exist_ok=True)
        with self._lock():
            self._merge_index()

    # ------------------------------------------------------------------ index
    @property
    def index_path(self) -> Path:
        return self.root / "index.json"

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        """Exclusive hold on the index (an advisory lock on ``index.lock``; no-op where the
        platform has none: shard names are unique, so the worst case is a lost index entry)."""
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows
            yield
            return
        with open(self.root / "index.lock", "a+b") as f:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)

    def _read_index(self) -> dict[str, Any] | None:
        if not self.index_path.is_file():
            return None
        try:
            index: dict[str, Any] = json.loads(self.index_path.read_text())
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
        return index

    def _merge_index(self) -> None:
        """Add the entries the index on disk lists (another run's too) to this cache's."""
        index = self._read_index()
        if index is None:
            return
        names = list(index["shards"])
        sums = index.get("checksums", {})
        for name in names:
            if name not in self._shards:
                crc, size = sums.get(name, ("", -1))
                self._shards[name] = (str(crc), int(size))
        for key, (shard, row, path) in index["entries"].items():
            self._entries.setdefault(key, (names[int(shard)], int(row), str(path)))

    def _write_index(self) -> None:
        names = list(self._shards)
        number = {name: i for i, name in enumerate(names)}
        index: dict[str, Any] = {
            "format": FORMAT,
            "teacher": self.teacher,
            "teacher_name": self.teacher_name,
            "image_size": self.image_size,
            "embed_shape": list(self.embed_shape),
            "dtype": "float16",
            "shards": names,
            "checksums": {name: list(self._shards[name]) for name in names},
            "entries": {k: [number[sh], row, p] for k, (sh, row, p) in self._entries.items()},
        }
        atomic_write_text(self.index_path, json.dumps(index))

    # ------------------------------------------------------------------ reading
    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries or any(k == key for k, _, _ in self._pending)

    def get(self, image_hash: str, flip: bool = False) -> np.ndarray:
        """The teacher embedding (C, g, g) float16 (read-only, memory-mapped) of an entry.

        Raises:
            CacheDamagedError: naming the shard, when it is missing, cut short or not an array
                of this cache's shape.
        """
        key = entry_key(image_hash, flip)
        if key not in self._entries:
            raise UnknownKeyError(f"no teacher embedding cached for {key} in {self.root}")
        shard, row, _ = self._entries[key]
        if shard not in self._open_shards:
            self._open_shards[shard] = self._open(shard)
        array = self._open_shards[shard]
        if row >= len(array):
            raise CacheDamagedError(
                f"teacher-embedding shard {self.root / shard} has {len(array)} rows, the index "
                f"needs row {row}; delete the shard (its entries are then computed again)"
            )
        return array[row]

    def shard_of(self, image_hash: str, flip: bool = False) -> Path | None:
        """The shard file holding an entry (None when it is not cached)."""
        entry = self._entries.get(entry_key(image_hash, flip))
        return None if entry is None else self.root / entry[0]

    def _open(self, shard: str) -> np.ndarray:
        path = self.root / shard
        try:
            array = np.load(path, mmap_mode="r")
        except (OSError, ValueError, EOFError) as exc:
            raise CacheDamagedError(
                f"teacher-embedding shard {path} cannot be read ({exc}); delete it (its "
                "entries are then computed again)"
            ) from None
        if tuple(array.shape[1:]) != self.embed_shape:
            raise CacheDamagedError(
                f"teacher-embedding shard {path} holds rows of shape {tuple(array.shape[1:])}, "
                f"expected {self.embed_shape}; delete it"
            )
        return array

    def check(self, keys: Iterable[str]) -> list[str]:
        """Check the CRC-32 and size of the shards holding ``keys`` (each shard once); a
        damaged shard's entries are dropped (to be computed again). Returns the damaged shards'
        file names."""
        shards = {self._entries[k][0] for k in keys if k in self._entries} - self._checked
        bad = [name for name in sorted(shards) if not self._intact(name)]
        for name in bad:
            logger.warning(
                "teacher-embedding shard %s is damaged (size or CRC-32 differs from the "
                "index); its entries are computed again",
                self.root / name,
            )
            self._entries = {k: v for k, v in self._entries.items() if v[0] != name}
            self._open_shards.pop(name, None)
        self._checked |= shards - set(bad)
        return bad

    def _intact(self, name: str) -> bool:
        crc, size = self._shards.get(name, ("", -1))
        path = self.root / name
        try:
            if size >= 0 and path.stat().st_size != size:
                return False
            if not crc:  # written before checksums: readable with the right shape is all
                self._open(name)
                return True
            value = 0
            with open(path, "rb") as f:
                while block := f.read(1 << 22):
                    value = zlib.crc32(block, value)
        except (OSError, CacheDamagedError):
            return False
        return f"{value:08x}" == crc

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
        """Write the queued entries as one shard (a name no other run uses), then, under the
        index lock, the index merged from disk with this cache's entries."""
        if not self._pending:
            return
        name = f"shard_{len(self._shards):05d}_{uuid.uuid4().hex[:12]}.npy"
        buffer = io.BytesIO()
        np.save(buffer, np.stack([e for _, _, e in self._pending]))
        data = buffer.getvalue()
        atomic_write_bytes(self.root / name, data)
        with self._lock():
            self._merge_index()
            self._shards[name] = (f"{zlib.crc32(data):08x}", len(data))
            self._checked.add(name)
            for row, (key, path, _) in enumerate(self._pending):
                self._entries[key] = (name, row, path)
            self._write_index()
        self._pending = []


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
    ("" for a sample that could not be read, reported in the report's problems with its file).
    ``progress(n)`` is called as entries finish: reused and unreadable ones at once, computed
    ones per ``encode`` call (``batch_size=1`` advances it image by image).
    """
    from samkit.items import each_item

    report = FillReport()
    done = (lambda: progress(len(flips))) if progress is not None else None
    samples = samples if isinstance(samples, Sequence) else list(samples)  # a Dataset stays lazy
    hashes = [""] * len(samples)
    todo: dict[bool, list[tuple[str, str, np.ndarray]]] = {f: [] for f in flips}

    def read(i: int) -> tuple[str, list[bool], np.ndarray | None]:  # every file read of one image
        sample = samples[i]
        digest = EmbeddingStore.key(sample.path)
        cache.check([entry_key(digest, f) for f in flips])
        missing = [f for f in flips if entry_key(digest, f) not in cache]
        return digest, missing, sample.image() if missing else None

    def skip(where: str, message: str) -> None:
        report.problems.append((where, message))

    for i, (digest, missing, image) in each_item(
        range(len(samples)), read, name=lambda i: str(samples[i].path), report=skip, done=done
    ):
        hashes[i] = digest
        reused = len(flips) - len(missing)
        report.reused += reused
        if progress is not None and reused:
            progress(reused)
        for f in missing:
            todo[f].append((digest, str(samples[i].path), image))  # type: ignore[arg-type]
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
