"""Results: the masks of one image (or video frame) with everything derived from them.

All geometry is in original-image pixels: masks (N, H, W) bool, boxes (N, 4) XYXY with an
inclusive max (:func:`samkit.masks.mask_to_box`), polygons as (x, y) pixel indices
(:mod:`samkit.polygons`). ``orig_img`` is BGR (as ``cv2.imread`` gives and as Ultralytics'
``Results.orig_img`` is), so ``plot()`` output can go straight to ``cv2.imwrite``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from samkit.errors import SamkitError

__all__ = ["Results"]


class Results:
    """Masks of one image.

    Masks are held either densely (``masks=`` an (N, H, W) bool array, as prompted prediction
    gives) or compactly as COCO RLEs (``rles=``, as segment everything gives: a 4000x3000 image
    with ~1800 masks is ~21 GB dense but a few MB as RLE). Everything except :attr:`masks`
    works per mask from whichever form is held: :attr:`boxes`, :attr:`areas`, :attr:`xy`,
    :attr:`xyn`, :meth:`plot`, :meth:`save_txt`, :meth:`coco_records` / :meth:`to_json`,
    ``len``, indexing and iteration never build the dense stack. :meth:`mask` returns one
    (H, W) mask.

    Attributes:
        orig_img: (H, W, 3) uint8 BGR, the image the masks belong to.
        masks: (N, H, W) bool at the original resolution. For a Results built from RLEs this is
            decoded on first access and kept: N * H * W bytes (e.g. 1800 masks of a 4000x3000
            image = 21.6 GB); prefer :meth:`mask` / iteration on big segment-everything results.
        rles: the per-mask uncompressed COCO RLEs (``{"size": [H, W], "counts": (K,) int64}``,
            column-major runs starting with zeros) when built from RLEs, else None.
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
        stats: what the run did; for segment everything ``mode`` ("exact" / "fast"),
            ``points`` (grid points), ``decoded``, ``skipped``, ``candidates`` (past the score
            filters) and ``kept`` (masks returned).

    Results is read-only; exactly one of ``masks`` and ``rles`` is given.
    """

    orig_img: np.ndarray
    scores: np.ndarray
    path: str
    names: dict[int, str]
    cls: np.ndarray
    object_ids: np.ndarray
    low_res_logits: np.ndarray | None
    frame: int | None
    stability_scores: np.ndarray | None
    speed: dict[str, float]
    stats: dict[str, Any]
    rles: list[dict[str, Any]] | None

    def __init__(
        self,
        orig_img: np.ndarray,
        masks: np.ndarray | None = None,
        scores: np.ndarray | None = None,
        path: str = "",
        names: dict[int, str] | None = None,
        cls: np.ndarray | None = None,
        object_ids: np.ndarray | None = None,
        low_res_logits: np.ndarray | None = None,
        frame: int | None = None,
        stability_scores: np.ndarray | None = None,
        speed: dict[str, float] | None = None,
        *,
        rles: Sequence[Mapping[str, Any]] | None = None,
        stats: Mapping[str, Any] | None = None,
    ) -> None:
        h, w = orig_img.shape[:2]
        if (masks is None) == (rles is None):
            raise SamkitError("Results needs exactly one of masks= (N, H, W) bool and rles=")
        if masks is not None:
            if masks.ndim != 3 or masks.shape[1:] != (h, w) or masks.dtype != bool:
                raise SamkitError(
                    f"Results.masks must be bool (N, {h}, {w}), got {masks.dtype} {masks.shape}"
                )
            n = len(masks)
            rle_list = None
        else:
            rle_list = [_normalize_rle(r, (h, w), i) for i, r in enumerate(rles or [])]
            n = len(rle_list)
        if scores is None:
            raise SamkitError(f"Results needs scores= of shape ({n},)")
        scores = np.asarray(scores)
        if scores.shape != (n,):
            raise SamkitError(f"Results.scores must have shape ({n},), got {scores.shape}")
        values = {
            "orig_img": orig_img,
            "_dense": masks,
            "rles": rle_list,
            "scores": scores,
            "path": path,
            "names": {0: "object"} if names is None else names,
            "cls": np.zeros(n, dtype=np.int64) if cls is None else cls,
            "object_ids": np.arange(n, dtype=np.int64) if object_ids is None else object_ids,
            "low_res_logits": low_res_logits,
            "frame": frame,
            "stability_scores": stability_scores,
            "speed": {} if speed is None else speed,
            "stats": {} if stats is None else dict(stats),
        }
        for key, value in values.items():
            object.__setattr__(self, key, value)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"Results is read-only (cannot set {name!r})")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"Results is read-only (cannot delete {name!r})")

    # ------------------------------------------------------------------ masks
    @property
    def is_dense(self) -> bool:
        """Whether the (N, H, W) mask stack is held in memory (given, or decoded by
        :attr:`masks`)."""
        return self.__dict__["_dense"] is not None

    @property
    def masks(self) -> np.ndarray:
        """(N, H, W) bool masks; decoded from :attr:`rles` on first access (N * H * W bytes)."""
        dense = self.__dict__["_dense"]
        if dense is None:
            dense = self._materialize()
            object.__setattr__(self, "_dense", dense)
        return dense

    def _materialize(self) -> np.ndarray:
        """Decode every RLE into one (N, H, W) bool array."""
        from samkit.masks import rle_to_mask

        out = np.zeros((len(self), *self.orig_shape), dtype=bool)
        for i, rle in enumerate(self.rles or []):
            out[i] = rle_to_mask(rle)
        return out

    def mask(self, index: int) -> np.ndarray:
        """Mask ``index`` as (H, W) bool, without building the whole stack."""
        dense = self.__dict__["_dense"]
        if dense is not None:
            return dense[index]
        from samkit.masks import rle_to_mask

        return rle_to_mask(self.rles[index])  # type: ignore[index]

    def iter_masks(self) -> Iterator[np.ndarray]:
        """Each mask in turn as (H, W) bool (one decoded at a time for RLE-held results)."""
        for i in range(len(self)):
            yield self.mask(i)

    # ------------------------------------------------------------------ container
    def __len__(self) -> int:
        return len(self.scores)

    def __getitem__(self, index: int | slice | np.ndarray | list[int]) -> Results:
        """The masks selected by ``index`` as a new Results (same image, same mask storage)."""
        idx = np.atleast_1d(np.arange(len(self))[index])

        def take(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else a[idx]

        dense = self.__dict__["_dense"]
        held_as_rle = self.rles is not None
        return Results(
            orig_img=self.orig_img,
            masks=None if held_as_rle else dense[idx],
            rles=[self.rles[i] for i in idx] if held_as_rle else None,  # type: ignore[index]
            scores=self.scores[idx],
            path=self.path,
            names=self.names,
            cls=take(self.cls),
            object_ids=take(self.object_ids),
            low_res_logits=take(self.low_res_logits),
            frame=self.frame,
            stability_scores=take(self.stability_scores),
            speed=self.speed,
            stats=self.stats,
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

        if self.rles is not None:
            h = self.orig_shape[0]
            return np.array([_rle_box(r["counts"], h) for r in self.rles], np.int64).reshape(-1, 4)
        return mask_to_box(self.masks).reshape(-1, 4)

    @cached_property
    def areas(self) -> np.ndarray:
        """(N,) int64 pixel count per mask."""
        if self.rles is not None:
            return np.array([int(r["counts"][1::2].sum()) for r in self.rles], dtype=np.int64)
        return self.masks.reshape(len(self), -1).sum(axis=1).astype(np.int64)

    @cached_property
    def xy(self) -> list[list[np.ndarray]]:
        """Per mask, every connected part's outer polygon (K, 2) float64 (x, y) pixels."""
        from samkit.polygons import mask_to_polygons

        return [mask_to_polygons(m, mode="all") for m in self.iter_masks()]

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

        return [mask_to_polygons_with_holes(m, tolerance=tolerance) for m in self.iter_masks()]

    def labels(self, conf: bool = True) -> list[str]:
        """Display text per mask: ``"<name> <object id> <score>"``."""
        out = []
        for c, oid, s in zip(self.cls, self.object_ids, self.scores, strict=True):
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
            _MaskSequence(self) if masks else None,
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
        return format_yolo_lines(self.xy, self.cls, w, h)

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
        from samkit.masks import coco_rle, rle_to_coco_string

        records = []
        for i in range(len(self)):
            if self.rles is not None:
                rle = self.rles[i]
                segmentation = {
                    "size": list(rle["size"]),
                    "counts": rle_to_coco_string(rle["counts"]),
                }
            else:
                segmentation = coco_rle(self.masks[i])
            x1, y1, x2, y2 = (int(v) for v in self.boxes[i])
            empty = self.areas[i] == 0
            rec: dict[str, Any] = {
                "segmentation": segmentation,
                "area": int(self.areas[i]),
                "bbox": [0, 0, 0, 0] if empty else [x1, y1, x2 - x1 + 1, y2 - y1 + 1],
                "score": float(self.scores[i]),
                "category_id": int(self.cls[i]),
                "object_id": int(self.object_ids[i]),
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


class _MaskSequence(Sequence[np.ndarray]):
    """The masks of a Results as a sequence of (H, W) bool arrays, decoded one at a time."""

    def __init__(self, results: Results) -> None:
        self._results = results

    def __len__(self) -> int:
        return len(self._results)

    def __getitem__(self, index: Any) -> Any:
        if not isinstance(index, (int, np.integer)):
            raise TypeError("mask sequences take one integer index")
        return self._results.mask(int(index))


def _normalize_rle(rle: Mapping[str, Any], hw: tuple[int, int], i: int) -> dict[str, Any]:
    """A COCO RLE (counts list, array or compressed string) -> ``{"size": [H, W], "counts":
    (K,) int64}``, checked against the image size."""
    from samkit.masks import coco_string_to_counts

    if not isinstance(rle, Mapping) or "size" not in rle or "counts" not in rle:
        raise SamkitError(f"rles[{i}] must be a COCO RLE dict with 'size' and 'counts'")
    size = [int(v) for v in rle["size"]]
    if size != list(hw):
        raise SamkitError(f"rles[{i}] has size {size}, the image is {list(hw)}")
    counts = rle["counts"]
    if isinstance(counts, (str, bytes)):
        counts = coco_string_to_counts(counts)
    arr = np.asarray(counts, dtype=np.int64).reshape(-1)
    if (arr.size and arr.min() < 0) or int(arr.sum()) != hw[0] * hw[1]:
        raise SamkitError(
            f"rles[{i}] counts must be non-negative runs summing to {hw[0] * hw[1]} pixels"
        )
    return {"size": size, "counts": arr}


def _rle_box(counts: np.ndarray, h: int) -> list[int]:
    """XYXY box (inclusive max; zeros when empty) of a column-major RLE of an image h tall."""
    ends = np.cumsum(counts)
    starts = ends - counts
    fg = (np.arange(len(counts)) % 2 == 1) & (counts > 0)
    if not fg.any():
        return [0, 0, 0, 0]
    first, last = starts[fg], ends[fg] - 1  # flat column-major pixel indices
    first_col, last_col = first // h, last // h
    # A run crossing into the next column covers row h - 1 of one column and row 0 of the next.
    spans = first_col != last_col
    y1 = np.where(spans, 0, first % h).min()
    y2 = np.where(spans, h - 1, last % h).max()
    return [int(first_col.min()), int(y1), int(last_col.max()), int(y2)]
