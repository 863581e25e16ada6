"""Saved overlays of a video source: one video file per source video, as Ultralytics writes.

``predict(source="clip.mp4", save=True)`` and ``samkit predict source=clip.mp4`` draw each
frame's masks and append the frame to ``<run>/<video stem>.avi`` (Motion-JPEG, which every
OpenCV build writes; Ultralytics writes .avi with MJPG on Linux too), at the source's frame
rate divided by ``vid_stride``. Frames of images and arrays are still saved as JPEGs.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from samkit.errors import SamkitError

if TYPE_CHECKING:
    from samkit.results import Results

__all__ = ["VideoWriters"]


class VideoWriters:
    """Open video writers of one run, keyed by source video; :meth:`close` finishes them.

    Args:
        vid_stride: the frame stride the source was read with (the written frame rate is the
            source's divided by it, so the video keeps its duration).
    """

    def __init__(self, vid_stride: int = 1) -> None:
        self.vid_stride = max(int(vid_stride), 1)
        self.paths: dict[str, Path] = {}
        self.frames: dict[str, int] = {}
        self._writers: dict[str, Any] = {}

    def write(self, result: Results, run_dir: Path, frame_bgr: np.ndarray) -> Path:
        """Append ``frame_bgr`` (H, W, 3) uint8 BGR, the overlay of ``result`` (a frame of the
        video ``result.path``), to that video's output file; returns the file."""
        import cv2

        key = result.path
        writer = self._writers.get(key)
        if writer is None:
            fps = _source_fps(key) / self.vid_stride
            path = _free_name(run_dir, Path(key).stem or "video", set(self.paths.values()))
            h, w = frame_bgr.shape[:2]
            writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), fps, (w, h))
            if not writer.isOpened():
                raise SamkitError(f"cannot write the video {path} (OpenCV has no MJPG writer)")
            self._writers[key], self.paths[key], self.frames[key] = writer, path, 0
        writer.write(np.ascontiguousarray(frame_bgr))
        self.frames[key] += 1
        return self.paths[key]

    def close(self) -> None:
        """Finish every open video (safe to call twice)."""
        for writer in self._writers.values():
            writer.release()
        self._writers.clear()


def _source_fps(path: str) -> float:
    """The frame rate the container of ``path`` declares (30 when it declares none)."""
    import cv2

    cap = cv2.VideoCapture(path)
    try:
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
    finally:
        cap.release()
    return fps if 0 < fps < 1000 else 30.0


def _free_name(run_dir: Path, stem: str, taken: set[Path]) -> Path:
    """``run_dir/<stem>.avi``, numbered (``<stem>_2.avi`` ...) when another video has it."""
    run_dir.mkdir(parents=True, exist_ok=True)
    path, k = run_dir / f"{stem}.avi", 2
    while path in taken:
        path, k = run_dir / f"{stem}_{k}.avi", k + 1
    return path
