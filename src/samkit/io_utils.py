"""Atomic file writes shared by every samkit writer.

A reader (or a crashed run) never sees a half-written label file: data goes to a temporary file
in the destination's directory, is flushed and fsynced, then moved over the destination with
``os.replace`` (atomic on POSIX and Windows within one file system). If anything fails the
temporary file is removed and the destination is left as it was.
"""

from __future__ import annotations

import contextlib
import functools
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from samkit.errors import ArgumentError, ArgumentTypeError

__all__ = ["atomic_open", "atomic_write_bytes", "atomic_write_text", "file_mode", "increment_path"]


@functools.cache
def _default_file_mode() -> int:
    # The umask can only be read by setting it; done once, on first use, not at import.
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


def file_mode(path: Path) -> int:
    """The mode a file written over ``path`` gets: that of the file it replaces, else the usual
    ``0o666 & ~umask`` (a temporary file from ``mkstemp`` is ``0o600`` until it is set)."""
    try:
        return path.stat().st_mode & 0o7777
    except FileNotFoundError:
        return _default_file_mode()


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str]) -> Iterator[BinaryIO]:
    """A binary file to write ``path`` through (for writers that stream, such as
    ``torch.save``): on a clean exit it is fsynced and moved over ``path``; on an error it is
    removed and ``path`` is left as it was. Parent directories are created.

    The new file gets the mode of the file it replaces, or the usual ``0o666 & ~umask``.
    """
    target = Path(path)
    if target.is_dir():
        raise ArgumentError(f"path must be a file path, got the directory {str(target)!r}")
    target.parent.mkdir(parents=True, exist_ok=True)
    mode = file_mode(target)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp_name, mode)
        os.replace(tmp_name, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_open`); returns the path."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ArgumentTypeError(f"data must be bytes, got {type(data).__name__}")
    with atomic_open(path) as f:
        f.write(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike[str], text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_write_bytes`); ``\\n`` line ends
    are written as is on every platform."""
    if not isinstance(text, str):
        raise ArgumentTypeError(f"text must be str, got {type(text).__name__}")
    return atomic_write_bytes(path, text.encode(encoding))


def increment_path(project: str | os.PathLike[str], name: str, exist_ok: bool = False) -> Path:
    """Create and return a new run folder ``project/name``, ``project/name2``, ... (never an
    existing one unless ``exist_ok``)."""
    base = Path(project) / name
    if exist_ok:
        base.mkdir(parents=True, exist_ok=True)
        return base
    base.parent.mkdir(parents=True, exist_ok=True)
    n = 1
    while True:
        candidate = base if n == 1 else base.with_name(f"{name}{n}")
        try:
            candidate.mkdir()  # atomic: two runs never get the same folder
            return candidate
        except FileExistsError:
            n += 1
