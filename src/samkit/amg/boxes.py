"""Segment everything from a detector's boxes (``prompts_from=``), as MobileSAMv2 does with
its object-aware boxes: instead of the point grid, each box the detector finds is one prompt.

The detector is anything auto-annotation takes as a box source
(:func:`samkit.annotate.detectors.make_box_source`): an Ultralytics YOLO model or checkpoint,
a folder of YOLO box labels, a COCO JSON with boxes, a :class:`~samkit.annotate.detectors.
BoxSource`, or a callable ``f(image_rgb) -> boxes (N, 4) XYXY [, class_ids, scores]``. It runs
once per image, on the whole image.

Per crop (the whole image when ``crop_n_layers == 0``): the boxes are clipped to the crop and
those left with no area dropped; each remaining box is decoded through the engine's
:meth:`~samkit.engine.Engine.decode` with ``multimask_output=False`` (one mask per box), and
the masks go through the grid path's filters (predicted IoU, then the reference's stability
score and box on the exact path, :mod:`samkit.amg.exact_path`), its crop-edge filter and its
NMS. A mask's ``point_coords`` is the centre of its (clipped) box.
"""

from __future__ import annotations

import os
from pathlib import PurePath
from typing import TYPE_CHECKING, Any

import numpy as np

from samkit.amg.exact_path import filter_exact
from samkit.amg.grid import boxes_near_crop_edge
from samkit.amg.records import Candidates
from samkit.engine import engine_geometry
from samkit.errors import ArgumentError, SamkitError
from samkit.postprocess.exact import Geometry
from samkit.prompts import ObjectPrompt

if TYPE_CHECKING:  # samkit.annotate is imported only when a detector is given
    from samkit.annotate.detectors import BoxSource, Detections


# the generator (samkit.amg.generator, which imports this module)
SamAutomaticMaskGenerator = Any

__all__ = ["box_prompt_source", "boxes_in_crop", "crops_from_boxes", "decode_boxes", "detect"]

ACCEPTED = (
    "an Ultralytics YOLO checkpoint or model (e.g. 'yolov8n.pt'), a folder of YOLO box "
    "labels, a COCO JSON with boxes, a samkit BoxSource, or a callable image_rgb -> "
    "boxes (N, 4) XYXY [, class_ids, scores]"
)


def box_prompt_source(value: Any) -> BoxSource:
    """The box source for ``prompts_from=value``; anything else raises :class:`ArgumentError`
    naming ``prompts_from`` and what it accepts. An Ultralytics checkpoint is loaded here."""
    from samkit.annotate.detectors import BoxSource, make_box_source

    usable = (
        isinstance(value, (BoxSource, os.PathLike))
        or (isinstance(value, str) and bool(value.strip()))
        or hasattr(value, "predict")
        or callable(value)
    )
    if isinstance(value, bool) or not usable:
        shown = repr(value) if isinstance(value, (str, int, float)) else type(value).__name__
        raise ArgumentError(f"prompts_from must be {ACCEPTED}; got {shown}")
    try:
        return make_box_source(value, arg="prompts_from")
    except SamkitError:
        raise
    except ImportError:
        raise ImportError(
            f"prompts_from={os.fspath(value)!r} needs the ultralytics package: "
            "pip install 'samkit[detect]' (or pip install ultralytics)"
        ) from None
    except Exception as exc:  # Ultralytics could not load the checkpoint
        if not isinstance(value, (str, os.PathLike)):
            raise
        raise ArgumentError(
            f"prompts_from={os.fspath(value)!r} is not a folder or a .json file and Ultralytics "
            f"could not load it ({type(exc).__name__}: {exc}); prompts_from must be {ACCEPTED}"
        ) from exc


def detect(source: BoxSource, image: np.ndarray, path: str = "") -> Detections:
    """The source's boxes on an ``(H, W, 3)`` uint8 RGB image; ``path`` (the image's file, if
    any) is passed by file name only, which label folders and COCO JSONs match on (they
    need one: :class:`ArgumentError` without)."""
    from samkit.annotate.detectors import CocoBoxes, YoloBoxLabels

    name = PurePath(path).name if path else ""
    if not name and isinstance(source, (YoloBoxLabels, CocoBoxes)):
        where = source.folder if isinstance(source, YoloBoxLabels) else source.path
        raise ArgumentError(
            f"prompts_from={str(where)!r} finds an image's boxes by its file name, and this "
            "image has none: give its path (generate(image, path=...)) or use a detector"
        )
    return source(image, name)


def boxes_in_crop(boxes: np.ndarray, crop_box: list[int]) -> np.ndarray:
    """Boxes ``(N, 4)`` XYXY in original pixels -> the ones that overlap ``crop_box`` (XYXY),
    clipped to it, in the crop's frame: ``(k, 4)`` float64."""
    x0, y0, x1, y1 = crop_box
    shifted = np.asarray(boxes, dtype=np.float64).reshape(-1, 4) - np.array([x0, y0, x0, y0])
    w, h = x1 - x0, y1 - y0
    clipped = np.clip(shifted, 0.0, np.array([w, h, w, h], dtype=np.float64))
    keep = (clipped[:, 2] > clipped[:, 0]) & (clipped[:, 3] > clipped[:, 1])
    return clipped[keep]


def decode_boxes(
    engine: Any,
    boxes: np.ndarray,
    geometry: Geometry,
    crop_box: list[int],
    orig_size: tuple[int, int],
    *,
    decoder_batch: int | None,
    pred_iou_thresh: float,
    stability_score_offset: float,
    stability_score_thresh: float,
) -> Candidates:
    """One batch of boxes ``(n, 4)`` XYXY in the crop's frame (the engine's current image) ->
    the candidates past the filters (crop frame, before NMS), one mask per box, each with the
    box centre as its point."""
    objects = [ObjectPrompt(box=b) for b in boxes]
    low, iou = engine.decode(objects, False, decoder_batch)
    s = low.shape[-1]
    low, iou = low.reshape(-1, s, s), np.asarray(iou, dtype=np.float32).reshape(-1)
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2.0
    if pred_iou_thresh > 0.0:  # float32 compare, as the grid path's engine.iou_above
        keep = np.flatnonzero(iou > np.float32(pred_iou_thresh))
        low, iou, centres = low[keep], iou[keep], centres[keep]
    data = filter_exact(
        engine, low, iou, centres, geometry, stability_score_offset, stability_score_thresh
    )
    if len(data):
        near = boxes_near_crop_edge(data.boxes, crop_box, [0, 0, orig_size[1], orig_size[0]])
        if near.any():
            data = data.take(np.flatnonzero(~near))
    return data


def crops_from_boxes(
    gen: SamAutomaticMaskGenerator, source: BoxSource, image: np.ndarray, path: str
) -> tuple[list[Candidates], int]:
    """The box path of ``gen.generate_candidates``: ``source``'s boxes, found once on the whole
    image, then per crop those that overlap it. Returns each crop's kept masks (original frame;
    crops no box overlaps are not encoded) and the number of crops."""
    from samkit.amg.grid import generate_crop_boxes
    from samkit.amg.progress import points_bar

    found = detect(source, image, path)
    gen.stats.boxes = len(found)
    crop_boxes, _ = generate_crop_boxes(image.shape[:2], gen.crop_n_layers, gen.crop_overlap_ratio)
    per_crop = [boxes_in_crop(found.boxes, box) for box in crop_boxes]
    bar = points_bar(sum(len(b) for b in per_crop), gen.progress)
    try:
        parts = [
            _crop(gen, image, crop_box, boxes, bar)
            for crop_box, boxes in zip(crop_boxes, per_crop, strict=True)
            if len(boxes)
        ]
    finally:
        bar.close()
    return parts, len(crop_boxes)


def _crop(
    gen: SamAutomaticMaskGenerator,
    image: np.ndarray,
    crop_box: list[int],
    boxes: np.ndarray,
    bar: Any,
) -> Candidates:
    """One crop's masks from its boxes ``(k, 4)`` (crop frame): decode a batch at a time,
    filter, NMS within the crop, full-resolution RLEs of the survivors, original frame."""
    from samkit.amg.exact_path import finish_exact
    from samkit.amg.grid import uncrop_candidates
    from samkit.amg.nms import batched_nms_numpy

    engine = gen.engine
    x0, y0, x1, y1 = crop_box
    orig_size = (image.shape[0], image.shape[1])
    engine.set_image(image[y0:y1, x0:x1, :])
    try:
        input_size, _ = engine.sizes()
        frames = engine_geometry(engine)
        crop_size = (y1 - y0, x1 - x0)
        geometry = Geometry(frames.low_res, frames.prompt_side, tuple(input_size), crop_size)
        settings: dict[str, Any] = {
            "decoder_batch": gen.decoder_batch,
            "pred_iou_thresh": gen.pred_iou_thresh,
            "stability_score_offset": gen.stability_score_offset,
            "stability_score_thresh": gen.stability_score_thresh,
        }
        parts = []
        for start in range(0, len(boxes), gen.points_per_batch):
            batch = boxes[start : start + gen.points_per_batch]
            parts.append(decode_boxes(engine, batch, geometry, crop_box, orig_size, **settings))
            bar.update(len(batch))
        data = Candidates.cat(parts)
        gen.stats.decoded += len(boxes)
        gen.stats.candidates += len(data)
        if len(data):
            keep = batched_nms_numpy(data.boxes, data.iou_preds, None, gen.box_nms_thresh)
            offset = gen.stability_score_offset
            data = finish_exact(data.take(keep), geometry, engine.mask_threshold, offset)
    finally:
        engine.reset_image()
    return uncrop_candidates(data, crop_box, orig_size)
