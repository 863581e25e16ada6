"""Results: the masks of one image (or video frame) with everything derived from them.

All geometry is in original-image pixels: masks (N, H, W) bool, boxes (N, 4) XYXY with an
inclusive max (:func:`samkit.masks.mask_to_box`), polygons as (x, y) pixel indices
(:mod:`samkit.polygons`). ``orig_img`` is BGR (as ``cv2.imread`` gives and as Ultralytics'
``Results.orig_img`` is), so ``plot()`` output can go straight to ``cv2.imwrite``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from samkit.errors import SamkitError

__all__ = ["Results"]


@dataclass(frozen=True, eq=False)
class Results:
    """Masks of one image.

    Attributes:
        orig_img: (H, W, 3) uint8 BGR, the image the masks belong to.
        masks: (N, H, W) bool at the original resolution.
        scores: (N,) float32, the decoder's predicted IoU (segment everything: predicted IoU too).
        path: where the image came from ("" for arrays; the video path for frames).
        names: class names, ``{class_id: name}``.
        cls: (N,) int64 class id per mask (0 unless a caller assigns classes).
        object_ids: (N,) int64, the prompted object each mask answers (index into the prompts);
            with ``keep_all`` several masks share an object; for segment everything 0..N-1.
        low_res_logits: (N, 1, s, s) float32 decoder logits (s = 256 for published models), to
            pass back as ``masks=`` for iterative refinement; None for segment everything.
        frame: frame index for video sources, else None.
        stability_scores: (N,) float32 for segment everything, else None.
        speed: milliseconds spent per stage ("encode", "decode", ...).
    """

    orig_img: np.ndarray
    masks: np.ndarray
    scores: np.ndarray
    path: str = ""
    names: dict[int, str] = field(default_factory=lambda: {0: "object"})
    cls: np.ndarray | None = None
    object_ids: np.ndarray | None = None
    low_res_logits: np.ndarray | None = None
    frame: int | None = None
    stability_scores: np.ndarray | None = None
    speed: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        h, w = self.orig_img.shape[:2]
        n = len(self.masks)
        if self.masks.ndim != 3 or self.masks.shape[1:] != (h, w) or self.masks.dtype != bool:
            raise SamkitError(
                f"Results.masks must be bool (N, {h}, {w}), got {self.masks.dtype} {self.masks.shape}"
            )
        if self.scores.shape != (n,):
            raise SamkitError(f"Results.scores must have shape ({n},), got {self.scores.shape}")
        if self.cls is None:
            object.__setattr__(self, "cls", np.zeros(n, dtype=np.int64))
        if self.object_ids is None:
            object.__setattr__(self, "object_ids", np.arange(n, dtype=np.int64))

    # ------------------------------------------------------------------ container
    def __len__(self) -> int:
        return len(self.masks)

    def __getitem__(self, index: int | slice | np.ndarray | list[int]) -> Results:
        """The masks selected by ``index`` as a new Results (same image)."""
        idx = np.arange(len(self))[index]
        idx = np.atleast_1d(idx)

        def take(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else a[idx]

        return replace(
            self,
            masks=self.masks[idx],
            scores=self.scores[idx],
            cls=take(self.cls),
            object_ids=take(self.object_ids),
            low_res_logits=take(self.low_res_logits),
            stability_scores=take(self.stability_scores),
        )

    def __iter__(self) -> Iterator[Results]:
        for i in range(len(self)):
            yield self[i]

    def __repr__(self) -> str:
        h, w = self.orig_img.shape[:2]
        frame = f", frame={self.frame}" if self.frame is not None else ""
        return f"Results({len(self)} masks, image {h}x{w}, path={self.path!r}{frame})"

    # ------------------------------------------------------------------ derived
    @property
    def orig_shape(self) -> tuple[int, int]:
        """(H, W) of the original image."""
        h, w = self.orig_img.shape[:2]
        return int(h), int(w)

    @cached_property
    def boxes(self) -> np.ndarray:
        """(N, 4) int64 XYXY from the masks (inclusive max; zeros for an empty mask)."""
        from samkit.masks import mask_to_box

        return mask_to_box(self.masks).reshape(-1, 4)

    @cached_property
    def areas(self) -> np.ndarray:
        """(N,) int64 pixel count per mask."""
        return self.masks.reshape(len(self), -1).sum(axis=1).astype(np.int64)

    @cached_property
    def xy(self) -> list[list[np.ndarray]]:
        """Per mask, every connected part's outer polygon (K, 2) float64 (x, y) pixels."""
        from samkit.polygons import mask_to_polygons

        return [mask_to_polygons(m, mode="all") for m in self.masks]

    @property
    def xyn(self) -> list[list[np.ndarray]]:
        """:attr:`xy` divided by (W, H): normalised to [0, 1]."""
        h, w = self.orig_shape
        scale = np.array([w, h], dtype=np.float64)
        return [[p / scale for p in parts] for parts in self.xy]

    def polygons_with_holes(
        self, tolerance: float = 0.0
    ) -> list[list[tuple[np.ndarray, list[np.ndarray]]]]:
        """Per mask, every part as ``(outer, holes)`` (see
        :func:`samkit.polygons.mask_to_polygons_with_holes`)."""
        from samkit.polygons import mask_to_polygons_with_holes

        return [mask_to_polygons_with_holes(m, tolerance=tolerance) for m in self.masks]

    def labels(self, conf: bool = True) -> list[str]:
        """Display text per mask: ``"<name> <object id> <score>"``."""
        out = []
        for c, oid, s in zip(self.cls, self.object_ids, self.scores, strict=True):  # type: ignore[arg-type]
            text = f"{self.names.get(int(c), str(int(c)))} {int(oid)}"
            out.append(f"{text} {float(s):.2f}" if conf else text)
        return out

    # ------------------------------------------------------------------ drawing
    def plot(
        self,
        masks: bool = True,
        boxes: bool = True,
        labels: bool = True,
        conf: bool = True,
        alpha: float = 0.5,
        line_width: int | None = None,
    ) -> np.ndarray:
        """The original image with the masks drawn on it: (H, W, 3) uint8 BGR."""
        from samkit.plotting import draw_overlay

        return draw_overlay(
            self.orig_img,
            self.masks if masks else None,
            self.boxes if boxes else None,
            self.labels(conf) if labels else None,
            alpha=alpha,
            line_width=line_width,
        )

    def save(self, filename: str | os.PathLike[str], **plot_args: Any) -> Path:
        """Write :meth:`plot` to ``filename`` (format from the suffix, e.g. .jpg / .png)."""
        import cv2

        path = Path(filename)
        path.parent.mkdir(parents=True, exist_ok=True)
        ok, buf = cv2.imencode(path.suffix or ".jpg", self.plot(**plot_args))
        if not ok:
            raise SamkitError(f"cannot encode an image as {path.suffix!r} for {path}")
        from samkit.io_utils import atomic_write_bytes

        return atomic_write_bytes(path, buf.tobytes())

    # ------------------------------------------------------------------ writers
    def yolo_lines(self) -> list[str]:
        """YOLO-seg lines ``class x1 y1 ...`` normalised, one per polygon part."""
        from samkit.formats.yolo import format_yolo_lines

        h, w = self.orig_shape
        return format_yolo_lines(self.xy, self.cls, w, h)  # type: ignore[arg-type]

    def save_txt(self, path: str | os.PathLike[str]) -> Path:
        """Write YOLO-seg labels (an empty file when there are no masks)."""
        from samkit.formats.yolo import write_yolo

        Path(path).parent.mkdir(parents=True, exist_ok=True)
        return write_yolo(path, self.yolo_lines())

    def coco_records(self, image_id: int | str | None = None) -> list[dict[str, Any]]:
        """One COCO-style record per mask.

        Fields: ``segmentation`` compressed RLE ``{"size": [H, W], "counts": str}`` (holes
        kept), ``area`` (pixels), ``bbox`` COCO XYWH with exclusive extent (a one-pixel mask at
        (x, y) is ``[x, y, 1, 1]``, as ``pycocotools.mask.toBbox``), ``score``,
        ``category_id`` (the class id), ``object_id`` and, when given, ``image_id``; segment
        everything adds ``stability_score``.
        """
        from samkit.masks import coco_rle

        records = []
        for i in range(len(self)):
            x1, y1, x2, y2 = (int(v) for v in self.boxes[i])
            empty = self.areas[i] == 0
            rec: dict[str, Any] = {
                "segmentation": coco_rle(self.masks[i]),
                "area": int(self.areas[i]),
                "bbox": [0, 0, 0, 0] if empty else [x1, y1, x2 - x1 + 1, y2 - y1 + 1],
                "score": float(self.scores[i]),
                "category_id": int(self.cls[i]),  # type: ignore[index]
                "object_id": int(self.object_ids[i]),  # type: ignore[index]
            }
            if self.stability_scores is not None:
                rec["stability_score"] = float(self.stability_scores[i])
            if image_id is not None:
                rec["image_id"] = image_id
            records.append(rec)
        return records

    def summary(self) -> dict[str, Any]:
        """A JSON-ready dict: path, frame, image size and :meth:`coco_records`."""
        h, w = self.orig_shape
        return {
            "path": self.path,
            "frame": self.frame,
            "height": h,
            "width": w,
            "speed_ms": {k: round(v, 2) for k, v in self.speed.items()},
            "objects": self.coco_records(),
        }

    def to_json(self, indent: int | None = None) -> str:
        """:meth:`summary` as a JSON string."""
        return json.dumps(self.summary(), indent=indent)
