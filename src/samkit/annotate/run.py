"""``auto_annotate``: detector boxes -> SAM masks -> YOLO-seg / COCO / LabelMe datasets.

Per image: read it (EXIF applied, RGB), ask the box source for boxes, filter them (classes,
conf, max_det, boxes outside the image), encode the image once and decode all its boxes
through the engine, drop empty / too small masks, write every format. Boxes, classes, scores
and masks are one :class:`~samkit.annotate.detectors.Detections` record from start to end,
so dropping an object can never shift another object's class.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from samkit.annotate.detectors import Detections, make_box_source
from samkit.annotate.images import default_output_dir, label_collisions, list_images
from samkit.annotate.writers import SUMMARY_FILE, DatasetWriter, parse_formats
from samkit.engine import Engine, as_engine
from samkit.errors import ArgumentError, SourceError
from samkit.polygons import PolygonMode

__all__ = [
    "AnnotateRun",
    "AnnotateSummary",
    "auto_annotate",
    "decode_boxes",
    "filter_boxes",
    "segment_boxes",
]

logger = logging.getLogger("samkit")


@dataclass
class AnnotateSummary:
    """What a run did. ``images``: images found; ``annotated``: labelled in this run;
    ``objects``: objects written; ``empty``: annotated images without objects; ``skipped``:
    images already labelled (resume); ``errors``: images that failed (``failures`` says
    why); ``dropped``: detections removed (outside the image, empty or < min_area mask)."""

    images: int = 0
    annotated: int = 0
    objects: int = 0
    empty: int = 0
    skipped: int = 0
    errors: int = 0
    dropped: int = 0
    seconds: float = 0.0
    output_dir: str = ""
    formats: list[str] = field(default_factory=list)
    names: dict[int, str] = field(default_factory=dict)
    failures: list[dict[str, str]] = field(default_factory=list)
    stage_seconds: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["images_per_s"] = round(self.annotated / self.seconds, 3) if self.seconds else 0.0
        out["names"] = {str(k): v for k, v in sorted(self.names.items())}
        return out

    def __str__(self) -> str:
        stages = ", ".join(f"{k} {v:.3f}s" for k, v in self.stage_seconds.items())
        return (
            f"{self.images} images: {self.annotated} annotated ({self.objects} objects, "
            f"{self.empty} empty), {self.skipped} skipped, {self.errors} errors, "
            f"{self.dropped} detections dropped in {self.seconds:.1f}s -> {self.output_dir}"
            + (f" (per image: {stages})" if stages else "")
        )


@dataclass
class AnnotateRun:
    """One run's shared state: where labels go, the box source, the class names and COCO ids
    seen so far, the summary, and which images may not be written (label-name clashes)."""

    writer: DatasetWriter
    source: Any
    names: dict[int, str]
    coco_ids: dict[int, int]
    summary: AnnotateSummary
    polygon_mode: PolygonMode | None
    clashes: dict[str, str]
    reserved: set[Path]
    verbose: bool = True

    def refuse(self, rel: str) -> str | None:
        """Why the image at ``rel`` may not be labelled, or None."""
        if rel in self.clashes:
            return f"its label file would overwrite the one of {self.clashes[rel]}"
        if any(p in self.reserved for p in self.writer.paths(rel).values()):
            return "its label file name is reserved for the run's own files"
        return None

    def fail(self, rel: str, message: str) -> None:
        """Count and report an image that failed."""
        from tqdm.auto import tqdm

        self.summary.errors += 1
        self.summary.failures.append({"image": rel, "error": message})
        if self.verbose:
            tqdm.write(f"samkit: skipped {rel}: {message}")
        logger.debug("auto_annotate: %s: %s", rel, message)


def filter_boxes(
    dets: Detections,
    height: int,
    width: int,
    *,
    conf: float = 0.0,
    classes: Sequence[int] | None = None,
    max_det: int | None = None,
) -> Detections:
    """Keep boxes with ``score >= conf`` of the wanted ``classes``, the ``max_det`` best
    (original order kept), clipped to the image; boxes left with no area are dropped."""
    keep = dets.scores >= conf
    if classes is not None:
        keep &= np.isin(dets.class_ids, np.asarray(list(classes), dtype=np.int64))
    dets = dets.select(keep)
    if max_det is not None and len(dets) > max_det:
        best = np.sort(np.argsort(-dets.scores, kind="stable")[:max_det])
        dets = dets.select(best)
    boxes = dets.boxes.copy()
    boxes[:, 0::2] = boxes[:, 0::2].clip(0, width)
    boxes[:, 1::2] = boxes[:, 1::2].clip(0, height)
    dets = Detections(boxes, dets.class_ids, dets.scores, dets.masks)
    return dets.select((boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1]))


def segment_boxes(
    engine: Engine | Any,
    image: np.ndarray,
    boxes: np.ndarray,
    decoder_batch: int | None = None,
    *,
    batch: int | None = None,
) -> np.ndarray:
    """Masks (N, H, W) bool for boxes (N, 4) XYXY in ``image`` (H, W, 3) uint8 RGB pixels: one
    encoder pass, the boxes decoded ``decoder_batch`` per decoder pass (default: the engine's;
    ``batch`` is the old spelling), single-mask output as Ultralytics' auto-annotation,
    upsampled to full resolution in chunks of bounded memory. ``engine``: an
    :class:`~samkit.engine.Engine` or anything :func:`~samkit.engine.as_engine` takes."""
    engine = as_engine(engine)
    decoder_batch = decoder_batch if decoder_batch is not None else batch
    engine.set_image(image)
    return decode_boxes(engine, boxes, image.shape[0], image.shape[1], decoder_batch)


def decode_boxes(
    engine: Engine, boxes: np.ndarray, height: int, width: int, decoder_batch: int | None = None
) -> np.ndarray:
    """Masks (N, H, W) bool for boxes (N, 4) XYXY on the engine's current image (set by
    ``set_image`` or restored by ``set_state``), as :func:`segment_boxes` decodes them."""
    from samkit.prompts import ObjectPrompt

    h, w = height, width
    out = np.zeros((len(boxes), h, w), dtype=bool)
    if not len(boxes):
        return out
    objects = [ObjectPrompt(box=np.asarray(b, dtype=np.float64)) for b in boxes]
    low, _ = engine.decode(objects, False, decoder_batch)
    per_chunk = max(1, int(256e6 // (4 * h * w)))  # float32 logits at full size, ~256 MB
    for start in range(0, len(boxes), per_chunk):
        out[start : start + per_chunk] = engine.upscale(low[start : start + per_chunk])
    return out


def _previous_names(output_dir: Path) -> dict[int, str]:
    try:
        data = json.loads((output_dir / SUMMARY_FILE).read_text(encoding="utf-8"))
        return {int(k): str(v) for k, v in data.get("names", {}).items()}
    except (OSError, ValueError, AttributeError):
        return {}


def auto_annotate(
    data: Any,
    det_model: Any = None,
    sam_model: Any = "sam_b.pt",
    device: str = "",
    output_dir: str | os.PathLike[str] | None = None,
    conf: float = 0.25,
    iou: float = 0.45,
    imgsz: int = 640,
    max_det: int = 300,
    classes: Sequence[int] | None = None,
    format: str | Sequence[str] = "yolo",
    *,
    names: Any = None,
    segmentation: Literal["rle", "polygon"] = "rle",
    polygon_mode: PolygonMode | None = None,
    tolerance: float = 0.0,
    min_area: int = 0,
    overwrite: bool = False,
    recursive: bool = False,
    decoder_batch: int | None = None,
    batch: int | None = None,
    progress: bool = True,
    verbose: bool = True,
    engine: Literal["local", "ray"] = "local",
    ray: Any = None,
) -> AnnotateSummary:
    """Turn a folder of images into a segmentation dataset: boxes from ``det_model`` prompt SAM.

    Args:
        data: a folder of images (``recursive`` for subfolders), an image file, a glob or a
            list of files. Label files mirror paths relative to the folder.
        det_model: the box source: an Ultralytics YOLO checkpoint / name / model (needs
            ``pip install 'samkit[detect]'``); a folder of YOLO detection txt files; a COCO
            JSON with boxes; a callable ``f(image_rgb) -> (boxes_xyxy (N, 4), class_ids (N,),
            scores (N,))`` in original-image pixels; or a ``BoxSource``.
        sam_model: a ``SAM`` front or an :class:`~samkit.engine.Engine` (its device, dtype
            and decoder batch are used as set), a SAM checkpoint path or name, a ``Sam`` model
            or a ``SamPredictor``.
        device: for a checkpoint or ``Sam`` (and the YOLO detector): ``""`` = the best device
            (:func:`samkit.device.select_device`); ``"cpu"``, ``"cuda:0"``, ``"0"``...
        output_dir: default a ``labels`` folder beside ``data`` (``path/to/images`` ->
            ``path/to/labels``: with the images, a ready YOLO dataset). Ultralytics' code writes
            ``path/to/images_auto_annotate_labels``; pass that to match it.
        conf: minimum detection score (every source; label files score 1.0).
        iou, imgsz: Ultralytics detectors only (NMS IoU, inference size).
        max_det: most boxes per image (highest scores kept).
        classes: keep only these class indices.
        format: ``"yolo"`` (txt + data.yaml), ``"coco"``, ``"labelme"``, or several
            (``"yolo,coco"`` or a list): one encoder pass serves them all.
        names: class names (list, dict or data.yaml path); default: the detector's, the box
            labels' data.yaml, the COCO categories, else the class index as text.
        segmentation: COCO masks as ``"rle"`` (lossless, holes kept) or ``"polygon"``.
        polygon_mode: ``"largest"``, ``"all"`` or ``"merge"``; None = YOLO ``merge`` (one
            line per object), COCO / LabelMe ``all`` (every part kept with its object).
        tolerance: polygon simplification in pixels (0 keeps every contour vertex).
        min_area: drop masks with fewer pixels (empty masks are always dropped).
        overwrite: relabel images whose labels exist (default: skip them, i.e. resume).
        decoder_batch: boxes per decoder pass (default: the engine's); ``batch`` is its old
            spelling.
        progress, verbose: progress bar (images/s, ETA); per-image errors and the summary.
        engine: ``"local"`` (this process) or ``"ray"``: the same files, made by a Ray Data
            pipeline of detector, encoder and decoder/writer actors (``pip install
            'samkit[ray]'``); see :mod:`samkit.cluster`.
        ray: with ``engine="ray"``, a :class:`~samkit.cluster.RayOptions` or its fields as a
            dict (``address``, ``encoder_actors``, ``decoder_actors``, ``gpus_per_actor``...).

    Returns:
        The run's :class:`AnnotateSummary`, also written to ``output_dir/summary.json``.
        An unreadable image or label file, or an image the model cannot take (e.g. 10000 x 1
        pixels), is reported with its path, counted and skipped; any other exception stops
        the run, and calling again resumes where it stopped.
    """
    from tqdm.auto import tqdm

    formats = parse_formats(format)
    if engine not in ("local", "ray"):
        raise ArgumentError(f"engine must be 'local' or 'ray', got {engine!r}")
    decoder_batch = decoder_batch if decoder_batch is not None else batch
    _check_arguments(decoder_batch=decoder_batch, max_det=max_det, min_area=min_area, conf=conf,
                     iou=iou, imgsz=imgsz, classes=classes, spelled="decoder_batch" if batch is None else "batch")  # fmt: skip
    root, images = list_images(data, recursive)
    out_dir = Path(output_dir) if output_dir else default_output_dir(data, root)
    if out_dir.exists() and not out_dir.is_dir():
        raise ArgumentError(f"output_dir {str(out_dir)!r} is a file; give a folder")
    writer = DatasetWriter(
        out_dir, formats, segmentation=segmentation, polygon_mode=polygon_mode, tolerance=tolerance
    )
    writer.prepare()  # an unmergeable instances.json stops here; a killed run's *.tmp go
    source = make_box_source(
        det_model, names=names, conf=conf, iou=iou, imgsz=imgsz, max_det=max_det,
        classes=classes, device=device,
    )  # fmt: skip
    all_names = {**_previous_names(out_dir), **source.names}
    coco_ids = {c: source.coco_id(c) for c in all_names}
    summary = AnnotateSummary(images=len(images), output_dir=str(out_dir), formats=list(formats))
    run = AnnotateRun(
        writer, source, all_names, coco_ids, summary, polygon_mode,
        label_collisions([rel for _, rel in images]), writer.reserved(), verbose,
    )  # fmt: skip
    start = time.perf_counter()
    images_left = list(images)
    if engine == "ray":
        from samkit.cluster import RayOptions
        from samkit.cluster.annotate import run_annotate

        source_args = dict(det_model=det_model, names=names, conf=conf, iou=iou, imgsz=imgsz,
                           max_det=max_det, classes=classes, device=device)  # fmt: skip
        filters = dict(conf=conf, classes=classes, max_det=max_det)
        opts = ray if isinstance(ray, RayOptions) else RayOptions.from_kwargs(dict(ray or {}))
        summary.stage_seconds = run_annotate(
            run, images, sam_model=sam_model, device=device, filters=filters,
            source_args=source_args, min_area=min_area, batch=decoder_batch,
            overwrite=overwrite, options=opts, progress=progress,
        )  # fmt: skip
        images_left = []
    local = _LocalStages(
        run, _Segmenter(sam_model, device, decoder_batch),
        {"conf": conf, "classes": classes, "max_det": max_det}, max(int(min_area), 1),
    )  # fmt: skip
    bar = tqdm(total=len(images_left), unit="img", disable=not progress, desc="annotate")
    try:
        for path, rel in images_left:
            local.image(path, rel, overwrite)
            bar.update(1)  # after the image is done
            bar.set_postfix(objects=summary.objects, errors=summary.errors, refresh=False)
    except BaseException:
        bar.close()
        if verbose:
            logger.warning(
                "auto_annotate stopped after %d images; run it again to resume", summary.annotated
            )
        raise
    bar.close()
    kept = writer.finalize([rel for _, rel in images], all_names, coco_ids, root)
    if kept and verbose:
        print(f"samkit annotate: kept {kept} images of the existing instances.json not in this run")
    summary.names = dict(all_names)
    summary.seconds = time.perf_counter() - start
    writer.write_summary(summary.to_dict())
    if verbose:
        print(f"samkit annotate: {summary}")
    return summary


def _check_arguments(**values: Any) -> None:
    """Numbers and class lists of :func:`auto_annotate`, checked before any work."""
    for name in ("decoder_batch", "max_det", "imgsz", "min_area"):
        v = values[name]
        if v is None and name == "decoder_batch":
            continue  # the engine's own
        low = 0 if name == "min_area" else 1
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low:
            shown = values["spelled"] if name == "decoder_batch" else name
            raise ArgumentError(f"{shown} must be >= {low} (an int), got {v!r}")
    for name in ("conf", "iou"):
        v = values[name]
        if isinstance(v, bool) or not isinstance(v, (int, float, np.number)) or not 0 <= v <= 1:
            raise ArgumentError(f"{name} must be a number in [0, 1], got {v!r}")
    classes = values["classes"]
    if classes is not None and (
        isinstance(classes, (str, bytes))
        or not all(isinstance(c, (int, np.integer)) and not isinstance(c, bool) for c in classes)
    ):
        raise ArgumentError(f"classes must be a list of class indices (ints), got {classes!r}")


class _Segmenter:
    """Boxes -> masks through the engine, made on first use (a run without detections never
    loads the SAM network)."""

    def __init__(self, sam_model: Any, device: str | None, decoder_batch: int | None) -> None:
        self.sam_model, self.device, self.decoder_batch = sam_model, device, decoder_batch
        self.engine: Engine | None = None

    def __call__(self, image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        if self.engine is None:
            self.engine = _engine(self.sam_model, self.device)
        return segment_boxes(self.engine, image, boxes, self.decoder_batch)


@dataclass
class _LocalStages:
    """The in-process pipeline of one image: read -> detect -> filter -> segment -> write."""

    run: AnnotateRun
    segment: _Segmenter
    box_filter: dict[str, Any]
    min_area: int

    def image(self, path: Path, rel: str, overwrite: bool) -> None:
        """Label one image, or count it as skipped / failed."""
        run, summary = self.run, self.run.summary
        problem = run.refuse(rel)
        if problem:
            return run.fail(rel, problem)
        if not overwrite and run.writer.is_done(rel):
            summary.skipped += 1
            return None
        try:
            image = _read_image(path)
            found = run.source(image, rel)
        except SourceError as exc:
            return run.fail(rel, str(exc))
        h, w = image.shape[:2]
        dets = filter_boxes(found, h, w, **self.box_filter)
        summary.dropped += len(found) - len(dets)
        if len(dets):
            try:
                masks = self.segment(image, dets.boxes)
            except (SourceError, MemoryError) as exc:  # this image, not the run
                return run.fail(rel, str(exc) or type(exc).__name__)
            dets = Detections(dets.boxes, dets.class_ids, dets.scores, masks)
            keep = masks.reshape(len(masks), -1).sum(1) >= self.min_area
            summary.dropped += int((~keep).sum())
            dets = dets.select(keep)
        self.write(rel, path, (h, w), dets)
        return None

    def write(self, rel: str, path: Path, hw: tuple[int, int], dets: Detections) -> None:
        run, summary = self.run, self.run.summary
        masks = dets.masks if dets.masks is not None else np.zeros((0, *hw), dtype=bool)
        for c in dets.class_ids.tolist():
            run.names.setdefault(int(c), str(c))
            run.coco_ids.setdefault(int(c), run.source.coco_id(int(c)))
        run.writer.write(
            rel, path, hw[0], hw[1], dets.class_ids, dets.scores, masks, run.names, run.coco_ids
        )
        summary.annotated += 1
        summary.objects += len(dets)
        summary.empty += len(dets) == 0


def _engine(sam_model: Any, device: str | None) -> Engine:
    """The engine for ``sam_model``; ``device`` applies where a new network is placed."""
    from samkit.backends.grabcut import GrabCutEngine, is_grabcut
    from samkit.modeling import Sam

    if is_grabcut(sam_model):
        return GrabCutEngine()
    if isinstance(sam_model, (str, os.PathLike)):
        from samkit.build import build_sam

        return as_engine(build_sam(sam_model), device=device or "")
    if isinstance(sam_model, Sam):
        return as_engine(sam_model, device=device or None)
    return as_engine(sam_model)


def _read_image(path: Path) -> np.ndarray:
    from samkit.sources import read_image

    return read_image(path)
