"""Results: the masks of one image (or video frame) with everything derived from them.

All geometry is in original-image pixels: masks (N, H, W) bool, boxes (N, 4) XYXY with an
inclusive max (:func:`samkit.masks.mask_to_box`), polygons as (x, y) pixel indices
(:mod:`samkit.polygons`). The image is held as RGB (``Results.image``, the pipeline's colour
order); ``orig_img`` and ``plot()`` give BGR at the edge, as ``cv2.imread`` / ``cv2.imwrite``
and Ultralytics' ``Results`` use.

``r.masks`` and ``r.boxes`` are Ultralytics-style views (:mod:`samkit.views`): ``r.masks.data``
is a torch tensor on the torch backend, ``r.boxes.xyxy`` / ``.conf`` / ``.cls`` likewise;
``np.asarray(r.masks)`` is the (N, H, W) bool stack. Writers live in
:mod:`samkit.formats.results`.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from samkit.errors import SamkitError
from samkit.masks import normalize_rle, rle_box
from samkit.results_rows import ResultRows
from samkit.views import Boxes, Masks

__all__ = ["Results"]


@dataclass(frozen=True, eq=False, repr=False)
class Results(ResultRows):
    """Masks of one image; read-only, checked on construction.

    Masks are held either densely (``mask_array=`` an (N, H, W) bool array, as prompted
    prediction gives) or compactly as COCO RLEs (``rles=``, as segment everything gives: a
    4000x3000 image with ~1800 masks is ~21 GB dense but a few MB as RLE); exactly one is
    given. Everything except ``np.asarray(r.masks)`` / ``r.masks.data`` works per mask from
    whichever form is held: boxes, areas, polygons, plot, writers, ``len``, indexing and
    iteration never build the dense stack. :meth:`mask` returns one (H, W) mask.

    Attributes:
        image: (H, W, 3) uint8 RGB, the image the masks belong to (``orig_img`` is its BGR).
        scores: (N,) float32, the decoder's predicted IoU (segment everything: predicted IoU).
        mask_array: (N, H, W) bool as given, or None for an RLE-held result (see
            :meth:`dense_masks`).
        rles: per-mask uncompressed COCO RLEs (``{"size": [H, W], "counts": (K,) int64}``,
            column-major runs starting with zeros) when built from RLEs, else None.
        path: where the image came from ("" for arrays; the video path for frames).
        names: class names, ``{class_id: name}``.
        cls: (N,) int64 class id per mask (0 unless a caller assigns classes).
        object_ids: (N,) int64, the prompted object each mask answers (index into the
            prompts); with multimask output three masks share an object; for segment
            everything 0..N-1.
        low_res_logits: (N, 1, s, s) float32 decoder logits (s = 256 for published models), to
            pass back as ``masks=`` for iterative refinement; None for segment everything.
        frame: frame index for video sources, else None.
        stability_scores: (N,) float32 for segment everything, else None.
        speed: milliseconds per stage, Ultralytics' keys ``preprocess`` (prompts), ``inference``
            (encoder and decoder), ``postprocess`` (score filter, upscaling, RLEs).
        stats: what the run did; for segment everything ``mode`` ("exact" / "fast" /
            "boxes"), ``points`` (grid points), ``decoded``, ``skipped``, ``candidates`` (past
            the score filters), ``kept`` (masks returned) and ``boxes`` (detector boxes, with
            ``prompts_from``).
        device: torch device of the views' tensors (``r.masks.data``, ``r.boxes.xyxy``); None
            gives NumPy arrays. See :meth:`cpu`, :meth:`numpy`, :meth:`to`.
        save_dir: the run folder ``predict(save=True)`` / ``save_txt=True`` wrote it into.

    Ultralytics' rows (:class:`~samkit.results_rows.ResultRows`): :meth:`summary` (one dict
    per object), ``to_df``, ``to_csv``, ``verbose``, ``new``.
    """

    image: np.ndarray
    scores: np.ndarray
    mask_array: np.ndarray | None = None
    rles: list[dict[str, Any]] | None = None
    path: str = ""
    names: dict[int, str] = field(default_factory=lambda: {0: "object"})
    cls: np.ndarray = None  # type: ignore[assignment]  # filled by __post_init__
    object_ids: np.ndarray = None  # type: ignore[assignment]
    low_res_logits: np.ndarray | None = None
    frame: int | None = None
    stability_scores: np.ndarray | None = None
    speed: dict[str, float] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)
    device: str | None = None
    save_dir: str | None = None

    def __post_init__(self) -> None:
        image = np.asarray(self.image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise SamkitError(
                f"Results.image must be (H, W, 3) uint8 RGB, got {image.dtype} {image.shape}"
            )
        h, w = image.shape[:2]
        masks = self.mask_array
        if (masks is None) == (self.rles is None):
            raise SamkitError("Results needs exactly one of mask_array= (N, H, W) bool and rles=")
        if masks is not None:
            if masks.ndim != 3 or masks.shape[1:] != (h, w) or masks.dtype != bool:
                raise SamkitError(
                    f"Results.mask_array must be bool (N, {h}, {w}), got {masks.dtype} "
                    f"{masks.shape}"
                )
            n = len(masks)
        else:
            rles = [normalize_rle(r, (h, w), f"rles[{i}]") for i, r in enumerate(self.rles or [])]
            self._set("rles", rles)
            n = len(rles)
        self._set("scores", _vector(self.scores, n, "scores", np.float32, required=True))
        self._set("cls", _vector(self.cls, n, "cls", np.int64, fill=np.zeros(n, np.int64)))
        self._set(
            "object_ids",
            _vector(self.object_ids, n, "object_ids", np.int64, fill=np.arange(n, dtype=np.int64)),
        )
        self._set(
            "stability_scores", _vector(self.stability_scores, n, "stability_scores", np.float32)
        )
        if self.low_res_logits is not None and len(self.low_res_logits) != n:
            raise SamkitError(
                f"Results.low_res_logits must hold {n} masks, got {len(self.low_res_logits)}"
            )
        if self.device is not None and not isinstance(self.device, str):
            self._set("device", str(self.device))

    def _set(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)

    # ------------------------------------------------------------------ masks
    @property
    def is_dense(self) -> bool:
        """Whether the (N, H, W) mask stack is held in memory (given, or decoded)."""
        return self.mask_array is not None or "_decoded" in self.__dict__

    def dense_masks(self) -> np.ndarray:
        """(N, H, W) bool; decoded from :attr:`rles` on first call and kept (N * H * W bytes,
        e.g. 1800 masks of a 4000x3000 image = 21.6 GB: prefer :meth:`mask` / iteration)."""
        if self.mask_array is not None:
            return self.mask_array
        if "_decoded" not in self.__dict__:
            self._set("_decoded", self._materialize())
        return self.__dict__["_decoded"]

    def _materialize(self) -> np.ndarray:
        from samkit.masks import rle_to_mask

        out = np.zeros((len(self), *self.orig_shape), dtype=bool)
        for i, rle in enumerate(self.rles or []):
            out[i] = rle_to_mask(rle)
        return out

    def mask(self, index: int) -> np.ndarray:
        """Mask ``index`` as (H, W) bool, without building the whole stack."""
        if self.is_dense:
            return self.dense_masks()[index]
        from samkit.masks import rle_to_mask

        return rle_to_mask(self.rles[index])  # type: ignore[index]

    def iter_masks(self) -> Iterator[np.ndarray]:
        """Each mask in turn as (H, W) bool (one decoded at a time for RLE-held results)."""
        for i in range(len(self)):
            yield self.mask(i)

    @cached_property
    def masks(self) -> Masks:
        """Ultralytics-style view: ``.data`` (N, H, W) bool tensor, ``.xy``, ``.xyn``,
        ``.orig_shape``; ``np.asarray(r.masks)`` is the NumPy stack."""
        return Masks(self)

    @cached_property
    def boxes(self) -> Boxes:
        """Ultralytics-style view: ``.xyxy``, ``.xywh``, ``.xyxyn``, ``.xywhn``, ``.conf``,
        ``.cls``, ``.data`` (N, 6); ``np.asarray(r.boxes)`` is :attr:`xyxy`."""
        return Boxes(self)

    # Ultralytics' other result kinds: SAM gives none of them.
    probs = None
    keypoints = None
    obb = None

    # ------------------------------------------------------------------ devices
    def _on(self, device: str | None) -> Results:
        """This result with its views on ``device``; storage (and a decoded stack) shared."""
        moved = dataclasses.replace(self, device=device)
        if "_decoded" in self.__dict__:
            moved._set("_decoded", self.__dict__["_decoded"])
        return moved

    def cpu(self) -> Results:
        """The same result with its views' tensors on the CPU (arrays are shared)."""
        return self._on("cpu")

    def numpy(self) -> Results:
        """The same result with NumPy arrays in its views."""
        return self._on(None)

    def cuda(self) -> Results:
        """The same result with its views' tensors on the current CUDA device."""
        return self._on("cuda")

    def to(self, device: Any = None, *args: Any, **kwargs: Any) -> Results:
        """The same result with its views' tensors on ``device`` (a string or torch.device;
        other arguments of ``Tensor.to`` are accepted and ignored: masks stay bool)."""
        if device is None:
            device = kwargs.get("device")
        if device is None:
            raise SamkitError("Results.to needs a device, e.g. r.to('cpu')")
        return self._on(str(device))

    # ------------------------------------------------------------------ container
    def __len__(self) -> int:
        return len(self.scores)

    def __getitem__(self, index: int | slice | np.ndarray | list[int]) -> Results:
        """The masks selected by ``index`` as a new Results (same image, same mask storage)."""
        idx = np.atleast_1d(np.arange(len(self))[index])

        def take(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else a[idx]

        return dataclasses.replace(
            self,
            mask_array=take(self.mask_array),
            rles=None if self.rles is None else [self.rles[i] for i in idx],
            scores=self.scores[idx],
            cls=self.cls[idx],
            object_ids=self.object_ids[idx],
            low_res_logits=take(self.low_res_logits),
            stability_scores=take(self.stability_scores),
        )

    def __iter__(self) -> Iterator[Results]:
        for i in range(len(self)):
            yield self[i]

    def __repr__(self) -> str:
        h, w = self.orig_shape
        frame = f", frame={self.frame}" if self.frame is not None else ""
        return f"Results({len(self)} masks, image {h}x{w}, path={self.path!r}{frame})"

    # ------------------------------------------------------------------ derived
    @property
    def orig_shape(self) -> tuple[int, int]:
        """(H, W) of the original image."""
        h, w = self.image.shape[:2]
        return int(h), int(w)

    @cached_property
    def orig_img(self) -> np.ndarray:
        """(H, W, 3) uint8 BGR copy of :attr:`image` (as Ultralytics' ``Results.orig_img``)."""
        return np.ascontiguousarray(self.image[:, :, ::-1])

    @cached_property
    def xyxy(self) -> np.ndarray:
        """(N, 4) int64 XYXY from the masks (inclusive max; zeros for an empty mask)."""
        from samkit.masks import mask_to_box

        if self.rles is not None:
            h = self.orig_shape[0]
            return np.array([rle_box(r["counts"], h) for r in self.rles], np.int64).reshape(-1, 4)
        return mask_to_box(self.dense_masks()).reshape(-1, 4)

    @cached_property
    def areas(self) -> np.ndarray:
        """(N,) int64 pixel count per mask."""
        if self.rles is not None:
            return np.array([int(r["counts"][1::2].sum()) for r in self.rles], dtype=np.int64)
        return self.dense_masks().sum(axis=(1, 2), dtype=np.int64)  # (0, H, W) gives (0,)

    @cached_property
    def xy(self) -> list[list[np.ndarray]]:
        """Per mask, every connected part's outer polygon (K, 2) float64 (x, y) pixels
        (``r.masks.xy`` joins the parts into one polygon per mask, as Ultralytics)."""
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
            self.xyxy if boxes else None,
            self.labels(conf) if labels else None,
            alpha=alpha,
            line_width=line_width,
        )

    def save(self, filename: str | os.PathLike[str] | None = None, **plot_args: Any) -> Path:
        """Write :meth:`plot` to ``filename`` (format from the suffix, e.g. .jpg / .png);
        default ``results_<image name>`` as Ultralytics."""
        from samkit.formats.results import save_plot

        return save_plot(self, filename, **plot_args)

    # ------------------------------------------------------------------ writers
    def yolo_lines(self, save_conf: bool = False) -> list[str]:
        """YOLO-seg lines (:func:`samkit.formats.results.yolo_lines`); ``save_conf`` appends
        each mask's score, as Ultralytics."""
        from samkit.formats.results import yolo_lines

        return yolo_lines(self, save_conf)

    def save_txt(self, path: str | os.PathLike[str], save_conf: bool = False) -> Path:
        """Write YOLO-seg labels (an empty file when there are no masks)."""
        from samkit.formats.results import save_yolo

        return save_yolo(self, path, save_conf)

    def coco_records(self, image_id: int | str | None = None) -> list[dict[str, Any]]:
        """One COCO-style record per mask (:func:`samkit.formats.results.coco_records`)."""
        from samkit.formats.results import coco_records

        return coco_records(self, image_id)

    def image_summary(self) -> dict[str, Any]:
        """A JSON-ready dict of the image: path, frame, size, speed and :meth:`coco_records`
        (``predictions.json``'s entries; :meth:`summary` gives Ultralytics' per-object rows)."""
        from samkit.formats.results import results_summary

        return results_summary(self)

    def to_json(self, indent: int | None = None) -> str:
        """:meth:`image_summary` as a JSON string."""
        from samkit.formats.results import to_json

        return to_json(self, indent)


def _vector(
    value: Any,
    n: int,
    name: str,
    dtype: Any,
    fill: np.ndarray | None = None,
    required: bool = False,
) -> np.ndarray | None:
    """``value`` as an (n,) array of ``dtype``; ``fill`` when None (an error if ``required``)."""
    if value is None:
        if required:
            raise SamkitError(f"Results needs {name}= of shape ({n},)")
        return fill
    arr = np.asarray(value)
    if arr.shape != (n,):
        raise SamkitError(f"Results.{name} must have shape ({n},), got {arr.shape}")
    return arr.astype(dtype, copy=False)


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
