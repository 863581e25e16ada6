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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from samkit.annotate.detectors import Detections, make_box_source
from samkit.annotate.images import default_output_dir, label_collisions, list_images
from samkit.annotate.segment import Segmenter, decode_boxes, filter_boxes, segment_boxes
from samkit.annotate.state import AnnotateRun, AnnotateSummary
from samkit.annotate.writers import SUMMARY_FILE, DatasetWriter, parse_formats
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
    formats = parse_formats(format)
    if engine not in ("local", "ray"):
        raise ArgumentError(f"engine must be 'local' or 'ray', got {engine!r}")
    decoder_batch = decoder_batch if decoder_batch is not None else batch
    _check_arguments(decoder_batch=decoder_batch, max_det=max_det, min_area=min_area, conf=conf,
                     iou=iou, imgsz=imgsz, classes=classes, spelled="decoder_batch" if batch is None else "batch")  # fmt: skip
    source_args = dict(det_model=det_model, names=names, conf=conf, iou=iou, imgsz=imgsz,
                       max_det=max_det, classes=classes, device=device)  # fmt: skip
    writer_args = dict(segmentation=segmentation, polygon_mode=polygon_mode, tolerance=tolerance)
    root, images = list_images(data, recursive)
    run = _prepare(data, root, images, output_dir, formats, writer_args, source_args, verbose)
    filters = {"conf": conf, "classes": classes, "max_det": max_det}
    start = time.perf_counter()
    if engine == "ray":
        from samkit.cluster import RayOptions
        from samkit.cluster.annotate import run_annotate

        opts = ray if isinstance(ray, RayOptions) else RayOptions.from_kwargs(dict(ray or {}))
        run.summary.stage_seconds = run_annotate(
            run, images, sam_model=sam_model, device=device, filters=filters,
            source_args=source_args, min_area=min_area, batch=decoder_batch,
            overwrite=overwrite, options=opts, progress=progress,
        )  # fmt: skip
    else:
        stages = _LocalStages(
            run, Segmenter(sam_model, device, decoder_batch), filters, max(int(min_area), 1)
        )
        _annotate_locally(stages, images, overwrite, progress)
    return _finish(run, images, root, time.perf_counter() - start)


def _prepare(
    data: Any,
    root: Path,
    images: list[tuple[Path, str]],
    output_dir: str | os.PathLike[str] | None,
    formats: Sequence[str],
    writer_args: dict[str, Any],
    source_args: dict[str, Any],
    verbose: bool,
) -> AnnotateRun:
    """The run before its first image: the output folder checked and prepared (an unmergeable
    instances.json stops here; a killed run's ``*.tmp`` files go), the box source made, class
    names and COCO ids from an earlier run and the source."""
    out_dir = Path(output_dir) if output_dir else default_output_dir(data, root)
    if out_dir.exists() and not out_dir.is_dir():
        raise ArgumentError(f"output_dir {str(out_dir)!r} is a file; give a folder")
    writer = DatasetWriter(out_dir, formats, **writer_args)
    writer.prepare()
    source = make_box_source(**source_args)
    names = {**_previous_names(out_dir), **source.names}
    coco_ids = {c: source.coco_id(c) for c in names}
    summary = AnnotateSummary(images=len(images), output_dir=str(out_dir), formats=list(formats))
    return AnnotateRun(
        writer, source, names, coco_ids, summary, writer_args["polygon_mode"],
        label_collisions([rel for _, rel in images]), writer.reserved(), verbose,
    )  # fmt: skip


def _annotate_locally(
    stages: _LocalStages, images: list[tuple[Path, str]], overwrite: bool, progress: bool
) -> None:
    """Every image through the in-process stages, with a progress bar (images/s, ETA)."""
    from tqdm.auto import tqdm

    summary = stages.run.summary
    bar = tqdm(total=len(images), unit="img", disable=not progress, desc="annotate")
    try:
        for path, rel in images:
            stages.image(path, rel, overwrite)
            bar.update(1)  # after the image is done
            bar.set_postfix(objects=summary.objects, errors=summary.errors, refresh=False)
    except BaseException:
        bar.close()
        if stages.run.verbose:
            logger.warning(
                "auto_annotate stopped after %d images; run it again to resume", summary.annotated
            )
        raise
    bar.close()


def _finish(
    run: AnnotateRun, images: list[tuple[Path, str]], root: Path, seconds: float
) -> AnnotateSummary:
    """The dataset-wide files (data.yaml, the merged instances.json) and ``summary.json``."""
    summary = run.summary
    kept = run.writer.finalize([rel for _, rel in images], run.names, run.coco_ids, root)
    if kept and run.verbose:
        print(f"samkit annotate: kept {kept} images of the existing instances.json not in this run")
    summary.names = dict(run.names)
    summary.seconds = seconds
    run.writer.write_summary(summary.to_dict())
    if run.verbose:
        print(f"samkit annotate: {summary}")
    return summary


def _previous_names(output_dir: Path) -> dict[int, str]:
    try:
        data = json.loads((output_dir / SUMMARY_FILE).read_text(encoding="utf-8"))
        return {int(k): str(v) for k, v in data.get("names", {}).items()}
    except (OSError, ValueError, AttributeError):
        return {}


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


@dataclass
class _LocalStages:
    """The in-process pipeline of one image: read -> detect -> filter -> segment -> write."""

    run: AnnotateRun
    segment: Segmenter
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


def _read_image(path: Path) -> np.ndarray:
    from samkit.sources import read_image

    return read_image(path)
