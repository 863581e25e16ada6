"""Image sources -> a stream of RGB images, one at a time (bounded memory).

Accepted: a file path (image or video), a directory (``recursive`` for subfolders), a glob
pattern, an http(s) URL, a NumPy array (BGR, as ``cv2.imread`` gives; (H, W) grayscale and
BGRA too), a PIL image (RGB; any mode is converted), or a list / tuple of any of these.
Images read from files, URLs and PIL get their EXIF orientation applied.

A single source that cannot be read raises :class:`~samkit.errors.SourceError`. Inside a
multi-item source (folder, glob, list), an unreadable item is yielded as a :class:`SourceItem`
with ``error`` set and no image, so the caller can report it and go on. Hidden files (names
starting with ".") in folders are ignored.
"""

from __future__ import annotations

import glob as globlib
import io
import os
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from samkit.errors import SourceError

__all__ = [
    "IMAGE_SUFFIXES",
    "VIDEO_SUFFIXES",
    "SourceItem",
    "count_items",
    "is_collection",
    "iter_source",
]

IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm", ".pbm",
     ".jp2", ".dng", ".mpo", ".heic"}
)  # fmt: skip
VIDEO_SUFFIXES = frozenset(
    {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpeg", ".mpg", ".wmv", ".flv", ".ts", ".asf"}
)  # fmt: skip
_GLOB_CHARS = set("*?[")
MAX_URL_BYTES = 256 * 2**20  # the most one URL image may send


@dataclass(frozen=True)
class SourceItem:
    """One image of a source: ``image`` (H, W, 3) uint8 RGB, or None with ``error`` set.

    ``path`` is the file / URL it came from ("" for in-memory images, ``"image<i>"`` for the
    i-th array of a list); ``frame`` the frame index inside a video, else None.
    """

    image: np.ndarray | None
    path: str
    frame: int | None = None
    error: str | None = None


def is_url(value: object) -> bool:
    return isinstance(value, str) and value.lower().startswith(("http://", "https://"))


def _pil_to_rgb(img: Any) -> np.ndarray:
    from PIL import ImageOps

    img = ImageOps.exif_transpose(img)
    if img.mode != "RGB":
        if img.mode in ("I;16", "I;16B", "I;16L", "I"):  # 16/32-bit grayscale: scale to 8 bits
            arr = np.asarray(img, dtype=np.float64)
            top = max(float(arr.max()), 1.0)
            gray = np.clip(arr / (65535.0 if top > 255 else 255.0) * 255.0 + 0.5, 0, 255)
            return np.repeat(gray.astype(np.uint8)[:, :, None], 3, axis=2)
        img = img.convert("RGB")
    return np.ascontiguousarray(np.asarray(img, dtype=np.uint8))


def read_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an image file (EXIF orientation applied) as (H, W, 3) uint8 RGB.

    Raises:
        SourceError: missing, not a file, or not a readable image.
    """
    from PIL import Image

    p = Path(path)
    if not p.exists():
        raise SourceError(f"source {str(path)!r} does not exist")
    if not p.is_file():
        raise SourceError(f"source {str(path)!r} is not a file")
    try:
        with Image.open(p) as img:
            img.load()
            return _pil_to_rgb(img)
    except Exception as exc:  # any decoder failure means "not a readable image"
        # Besides PIL's own errors (UnidentifiedImageError, OSError, ValueError, SyntaxError),
        # plugins that patch Image.open (e.g. Ultralytics' HEIF hook) may raise others.
        raise SourceError(f"cannot read {str(path)!r} as an image: {exc}") from None


def read_url(url: str, timeout: float = 30.0, max_bytes: int | None = None) -> np.ndarray:
    """Fetch an image over http(s) as (H, W, 3) uint8 RGB (EXIF orientation applied).

    At most ``max_bytes`` (default :data:`MAX_URL_BYTES`) are read: a response that streams
    on without end (a camera feed, a wrong URL) is a SourceError, not a growing buffer.
    """
    from PIL import Image

    limit = MAX_URL_BYTES if max_bytes is None else int(max_bytes)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            data = response.read(limit + 1)
    except (urllib.error.URLError, OSError) as exc:
        raise SourceError(f"cannot download {url}: {getattr(exc, 'reason', exc)}") from None
    if len(data) > limit:
        raise SourceError(
            f"{url} sends more than {limit / 2**20:.0f} MiB; an image source must be one image "
            "(for a stream, save frames or a video file first)"
        )
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            return _pil_to_rgb(img)
    except Exception as exc:  # any decoder failure, as in read_image
        raise SourceError(f"{url} is not a readable image: {exc}") from None


def array_to_rgb(image: np.ndarray, name: str = "source") -> np.ndarray:
    """A NumPy image in OpenCV's order -> (H, W, 3) uint8 RGB.

    (H, W) grayscale, (H, W, 1), (H, W, 3) BGR and (H, W, 4) BGRA are accepted; dtype uint8.
    """
    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        raise SourceError(f"{name} must be a uint8 image array, got dtype {arr.dtype}")
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim == 2:
        return np.repeat(arr[:, :, None], 3, axis=2)
    if arr.ndim == 3 and arr.shape[2] in (3, 4):
        return np.ascontiguousarray(arr[:, :, 2::-1])
    raise SourceError(
        f"{name} must have shape (H, W), (H, W, 3) BGR or (H, W, 4) BGRA, got {arr.shape}"
    )


def _is_pil(value: object) -> bool:
    return type(value).__module__.startswith("PIL.") and hasattr(value, "mode")


def _video_frames(path: Path, stride: int = 1) -> Iterator[SourceItem]:
    """Frames 0, stride, 2 * stride ... of a video (``frame`` is the index in the file; the
    frames between are grabbed, not decoded)."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            yield SourceItem(None, str(path), error=f"cannot open {str(path)!r} as a video")
            return
        index = 0
        while True:
            if index % stride:
                if not cap.grab():
                    break
                index += 1
                continue
            ok, frame = cap.read()
            if not ok:
                break
            yield SourceItem(array_to_rgb(frame), str(path), frame=index)
            index += 1
        if index == 0:
            yield SourceItem(None, str(path), error=f"video {str(path)!r} has no readable frames")
    finally:
        cap.release()


def _video_frame_count(path: Path) -> int:
    import cv2

    cap = cv2.VideoCapture(str(path))
    try:
        return max(int(cap.get(cv2.CAP_PROP_FRAME_COUNT)), 0)
    finally:
        cap.release()


def _file_items(path: Path, stride: int = 1) -> Iterator[SourceItem]:
    if path.suffix.lower() in VIDEO_SUFFIXES:
        yield from _video_frames(path, stride)
        return
    try:
        yield SourceItem(read_image(path), str(path))
    except SourceError as exc:
        yield SourceItem(None, str(path), error=str(exc))


def _folder_files(folder: Path, recursive: bool) -> list[Path]:
    pattern = "**/*" if recursive else "*"
    files = [
        p
        for p in folder.glob(pattern)
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    ]
    return sorted(files)


def _expand(source: Any, recursive: bool) -> tuple[list[Any], bool]:
    """Flatten ``source`` into leaf items (paths, URLs, arrays, PIL images) and tell whether
    it is a multi-item source."""
    if isinstance(source, (list, tuple)):
        leaves: list[Any] = []
        for s in source:
            leaves.extend(_expand(s, recursive)[0])
        return leaves, True
    if isinstance(source, np.ndarray) or _is_pil(source) or is_url(source):
        return [source], False
    if isinstance(source, (str, os.PathLike)):
        text = os.fspath(source)
        if not text.strip():
            raise SourceError("source is empty: give an image, folder, glob, URL or video")
        path = Path(text).expanduser()
        if path.is_dir():
            return list(_folder_files(path, recursive)), True
        if _GLOB_CHARS & set(text) and not path.exists():
            matches = sorted(globlib.glob(os.path.expanduser(text), recursive=recursive))
            return [Path(m) for m in matches if Path(m).is_file()], True
        return [path], False
    raise SourceError(
        f"source must be a path, folder, glob, URL, numpy array, PIL image or a list of them, "
        f"got {type(source).__name__}"
    )


def _leaf_items(leaf: Any, index: int, stride: int = 1) -> Iterator[SourceItem]:
    if isinstance(leaf, np.ndarray):
        yield SourceItem(array_to_rgb(leaf), f"image{index}" if index else "")
    elif _is_pil(leaf):
        yield SourceItem(_pil_to_rgb(leaf), getattr(leaf, "filename", "") or "")
    elif is_url(leaf):
        try:
            yield SourceItem(read_url(leaf), leaf)
        except SourceError as exc:
            yield SourceItem(None, leaf, error=str(exc))
    else:
        path = Path(leaf)
        if not path.exists():
            yield SourceItem(None, str(leaf), error=f"source {str(leaf)!r} does not exist")
        else:
            yield from _file_items(path, stride)


def _check_stride(vid_stride: Any) -> int:
    if isinstance(vid_stride, bool) or not isinstance(vid_stride, int) or vid_stride < 1:
        raise SourceError(f"vid_stride must be an int >= 1, got {vid_stride!r}")
    return vid_stride


def iter_source(source: Any, recursive: bool = False, vid_stride: int = 1) -> Iterator[SourceItem]:
    """Yield the images of ``source`` one at a time (lazily: a folder is listed up front,
    every image is read only when its turn comes); of a video, every ``vid_stride``-th frame.

    Raises:
        SourceError: an unknown source type, an empty folder / glob, or a single-item source
            that cannot be read (multi-item sources yield error items instead).
    """
    stride = _check_stride(vid_stride)
    leaves, multi = _expand(source, recursive)
    if not leaves:
        raise SourceError(f"source {source!r} holds no files")
    for i, leaf in enumerate(leaves):
        for item in _leaf_items(leaf, i if multi else 0, stride):
            if item.error is not None and not multi:
                raise SourceError(item.error)
            yield item


def is_collection(source: Any) -> bool:
    """Whether ``source`` is a multi-item source (folder, glob, list), whose items are skipped
    with a report when they fail, rather than a single image, whose failure is an error."""
    try:
        return _expand(source, False)[1]
    except SourceError:
        return False


def count_items(source: Any, recursive: bool = False, vid_stride: int = 1) -> int | None:
    """How many images ``source`` will yield (video frames from the container's count, every
    ``vid_stride``-th), or None when unknown. Cheap: nothing is decoded."""
    try:
        leaves, _ = _expand(source, recursive)
    except SourceError:
        return None
    total = 0
    for leaf in leaves:
        if isinstance(leaf, Path) and leaf.suffix.lower() in VIDEO_SUFFIXES:
            total += -(-_video_frame_count(leaf) // max(vid_stride, 1))
        else:
            total += 1
    return total
