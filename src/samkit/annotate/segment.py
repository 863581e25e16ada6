"""Boxes -> masks through the engine: the filter and decode steps of auto-annotation, shared by
the single-process run (:mod:`samkit.annotate.run`) and the Ray stages
(:mod:`samkit.cluster.stages`).

Boxes are (N, 4) XYXY in original-image pixels; masks come back (N, H, W) bool at the image's
full resolution, one single-mask decoder output per box as Ultralytics' auto-annotation.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from samkit.annotate.detectors import Detections
from samkit.engine import Engine, as_engine

__all__ = ["Segmenter", "decode_boxes", "engine_for", "filter_boxes", "segment_boxes"]


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


def engine_for(sam_model: Any, device: str | None) -> Engine:
    """The engine for ``sam_model`` through :func:`samkit.entrance.load` (its device rule:
    ``""`` is auto; ``None`` auto for a file, "keep" for a given network)."""
    from samkit.entrance import load

    return load(sam_model, device=device).engine


class Segmenter:
    """Boxes -> masks through the engine, made on first use (a run without detections never
    loads the SAM network)."""

    def __init__(self, sam_model: Any, device: str | None, decoder_batch: int | None) -> None:
        self.sam_model, self.device, self.decoder_batch = sam_model, device, decoder_batch
        self.engine: Engine | None = None

    def __call__(self, image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        if self.engine is None:
            self.engine = engine_for(self.sam_model, self.device)
        return segment_boxes(self.engine, image, boxes, self.decoder_batch)
