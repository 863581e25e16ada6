"""Image lists for auto-annotation: every image of ``data`` with its path relative to a root.

Label files mirror the relative paths, so ``data/a/b.jpg`` gets ``output_dir/a/b.txt``.
Images are read one at a time (EXIF orientation applied, RGB uint8) when their turn comes.
"""

from __future__ import annotations

import glob as globlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from samkit.errors import SourceError

__all__ = ["default_output_dir", "list_images"]

_GLOB_CHARS = set("*?[")


def _image_suffixes() -> frozenset[str]:
    from samkit.sources import IMAGE_SUFFIXES

    return IMAGE_SUFFIXES


def _folder_images(folder: Path, recursive: bool) -> list[Path]:
    suffixes = _image_suffixes()
    out: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".")) if recursive else []
        out.extend(
            Path(dirpath, f)
            for f in filenames
            if not f.startswith(".") and Path(f).suffix.lower() in suffixes
        )
    return sorted(out)


def _glob_root(pattern: str) -> Path:
    parts = Path(pattern).parts
    fixed = []
    for part in parts:
        if _GLOB_CHARS & set(part):
            break
        fixed.append(part)
    return Path(*fixed) if fixed else Path(".")


def list_images(data: Any, recursive: bool = False) -> tuple[Path, list[tuple[Path, str]]]:
    """The images of ``data`` as ``(root, [(path, rel_posix), ...])`` in sorted order.

    ``data``: a folder (image files by extension; ``recursive`` for subfolders; hidden names
    skipped), one image file, a glob pattern, or a list of image files (root = their common
    folder).

    Raises:
        SourceError: ``data`` does not exist or holds no images.
    """
    if isinstance(data, (list, tuple)):
        files = [Path(os.fspath(p)).expanduser() for p in data]
        if not files:
            raise SourceError("data is an empty list")
        root = Path(os.path.commonpath([str(p.absolute().parent) for p in files]))
        return root, [(p, p.absolute().relative_to(root).as_posix()) for p in files]
    if not isinstance(data, (str, os.PathLike)):
        raise SourceError(
            f"data must be a folder, an image file, a glob or a list of files, got {type(data).__name__}"
        )
    text = os.path.expanduser(os.fspath(data))
    path = Path(text)
    if path.is_dir():
        root, files = path, _folder_images(path, recursive)
    elif path.is_file():
        root, files = path.parent, [path]
    elif _GLOB_CHARS & set(text):
        root = _glob_root(text)
        files = sorted(
            Path(m) for m in globlib.glob(text, recursive=recursive) if Path(m).is_file()
        )
    else:
        raise SourceError(f"data {os.fspath(data)!r} does not exist")
    if not files:
        raise SourceError(f"data {os.fspath(data)!r} holds no images")
    return root, [(p, p.relative_to(root).as_posix()) for p in files]


def default_output_dir(data: Any, root: Path) -> Path:
    """A ``labels`` folder beside ``data`` (``path/to/images`` -> ``path/to/labels``), so that
    ``images/`` + ``labels/`` is a ready YOLO dataset; for a glob or a list, beside the root
    folder. (Ultralytics' ``auto_annotate`` writes ``path/to/images_auto_annotate_labels``.)"""
    if isinstance(data, (str, os.PathLike)) and not (_GLOB_CHARS & set(os.fspath(data))):
        p = Path(os.path.expanduser(os.fspath(data)))
    else:
        p = root
    p = p.absolute()
    out = p.parent / "labels"
    return out if out != p else p.parent / "labels_auto_annotate"  # data is itself "labels"


def label_collisions(rels: Sequence[str]) -> dict[str, str]:
    """Images whose label file would be another image's (``a.jpg`` and ``a.png`` both give
    ``a.txt``): ``{rel: rel of the image that keeps the name}``."""
    first: dict[str, str] = {}
    clashes: dict[str, str] = {}
    for rel in rels:
        key = rel.rsplit(".", 1)[0] if "." in rel.rsplit("/", 1)[-1] else rel
        if key in first:
            clashes[rel] = first[key]
        else:
            first[key] = rel
    return clashes
