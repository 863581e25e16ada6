"""Video frames read lazily: a folder of images, an OpenCV-readable video file, or frames in
memory. A source decodes one frame when asked; nothing is loaded up front.

Frames are RGB uint8 (H, W, 3). :func:`to_model_input` resizes one to the square model input
the way Meta's video predictor does for a frame folder (PIL's bicubic ``resize``, [0, 1],
ImageNet mean / std).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import torch

from samkit.errors import ArgumentError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


@runtime_checkable
class FrameSource(Protocol):
    """Random access to the frames of one video."""

    @property
    def size(self) -> tuple[int, int]:
        """(H, W) of every frame."""
        ...

    def __len__(self) -> int: ...

    def read(self, index: int) -> np.ndarray:
        """Frame ``index`` as (H, W, 3) uint8 RGB."""
        ...


def _frame_order(path: Path) -> tuple[int, str]:
    """Numbered names ("00012.jpg") in numeric order, others after them by name."""
    stem = path.stem
    return (int(stem), "") if stem.isdigit() else (1 << 62, path.name)


class FolderFrames:
    """The images of a folder (any of :data:`IMAGE_SUFFIXES`), in frame-number order."""

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)
        files = [p for p in self.folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES]
        if not files:
            raise ArgumentError(f"video_path: no image frames in folder {self.folder}")
        self.files = sorted(files, key=_frame_order)
        first = self.read(0)
        self._size = (int(first.shape[0]), int(first.shape[1]))

    @property
    def size(self) -> tuple[int, int]:
        return self._size

    def __len__(self) -> int:
        return len(self.files)

    def read(self, index: int) -> np.ndarray:
        from PIL import Image

        with Image.open(self.files[index]) as img:
            return np.asarray(img.convert("RGB"))


class VideoFileFrames:
    """A video file read with OpenCV; sequential reads decode on, a jump seeks."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        import cv2

        self.path = str(path)
        self._cap = cv2.VideoCapture(self.path)
        if not self._cap.isOpened():
            raise ArgumentError(f"video_path: OpenCV cannot open {self.path}")
        self._count = int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT))
        self._next = 0
        first = self.read(0)
        self._size = (int(first.shape[0]), int(first.shape[1]))

    @property
    def size(self) -> tuple[int, int]:
        return self._size

    def __len__(self) -> int:
        return self._count

    def read(self, index: int) -> np.ndarray:
        import cv2

        if not 0 <= index < max(self._count, 1):
            raise ArgumentError(f"frame index {index} outside the video's {self._count} frames")
        if index != self._next:
            self._cap.set(cv2.CAP_PROP_POS_FRAMES, index)
        ok, bgr = self._cap.read()
        if not ok:
            raise ArgumentError(f"{self.path}: frame {index} cannot be decoded")
        self._next = index + 1
        return np.ascontiguousarray(bgr[..., ::-1])


class ArrayFrames:
    """Frames already in memory (a sequence of (H, W, 3) uint8 arrays)."""

    def __init__(self, frames: Sequence[np.ndarray]) -> None:
        if len(frames) == 0:
            raise ArgumentError("video: no frames given")
        self.frames = frames
        self._size = (int(frames[0].shape[0]), int(frames[0].shape[1]))

    @property
    def size(self) -> tuple[int, int]:
        return self._size

    def __len__(self) -> int:
        return len(self.frames)

    def read(self, index: int) -> np.ndarray:
        return np.asarray(self.frames[index])


def open_frames(video: str | os.PathLike[str] | FrameSource | Sequence[np.ndarray]) -> FrameSource:
    """A folder of images, a video file, a :class:`FrameSource` or a list of frames."""
    if isinstance(video, FrameSource):
        return video
    if isinstance(video, (str, os.PathLike)):
        path = Path(video)
        if path.is_dir():
            return FolderFrames(path)
        if path.is_file():
            return VideoFileFrames(path)
        raise ArgumentError(f"video_path: {path} is neither a folder of frames nor a video file")
    if isinstance(video, Sequence):
        return ArrayFrames(list(video))  # type: ignore[arg-type]
    raise ArgumentError(
        f"video_path: expected a folder, a video file or a list of frames, got {type(video)}"
    )


def to_model_input(
    frame: np.ndarray, size: int, mean: torch.Tensor, std: torch.Tensor, device: torch.device
) -> torch.Tensor:
    """(H, W, 3) uint8 RGB -> (1, 3, size, size) float32 on ``device``: PIL bicubic resize,
    / 255, ``(x - mean) / std`` with mean / std (3, 1, 1)."""
    from PIL import Image

    resized = np.asarray(Image.fromarray(frame).resize((size, size)))
    x = torch.from_numpy(resized.astype(np.float64) / 255.0).permute(2, 0, 1).float()
    x = x.to(device)
    return ((x - mean.to(device)) / std.to(device)).unsqueeze(0)
