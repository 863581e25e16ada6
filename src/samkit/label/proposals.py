"""Proposals for the annotator to accept or reject: segment everything on one image, or a
detector's boxes (an Ultralytics checkpoint, a folder of YOLO box labels, a COCO JSON with
boxes: :func:`samkit.annotate.detectors.make_box_source`) turned into masks from the image's
cached embedding. Each proposal is ``{"rle": COCO RLE, "score": float, "label": str | None}``."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from samkit.label.checks import BadRequest
from samkit.label.segmenter import Segmenter
from samkit.masks import coco_rle

__all__ = ["Proposer", "parse_proposals"]

_KEYS = ("kind", "points_per_side", "pred_iou_thresh", "stability_score_thresh")


def parse_proposals(body: Any, has_detector: bool) -> dict[str, Any]:
    """Check a proposals body: ``{"kind": "everything" | "detector", "points_per_side": int,
    "pred_iou_thresh": float, "stability_score_thresh": float}`` (all but kind optional)."""
    if not isinstance(body, dict):
        raise BadRequest(f"body: expected a JSON object, got {type(body).__name__}")
    unknown = [k for k in body if k not in _KEYS]
    if unknown:
        raise BadRequest(f"body: unknown field {unknown[0]!r} (expected {', '.join(_KEYS)})")
    kind = body.get("kind")
    if kind not in ("everything", "detector"):
        raise BadRequest(f"kind: expected 'everything' or 'detector', got {kind!r}")
    if kind == "detector" and not has_detector:
        raise BadRequest("kind: no detector was given at start (samkit label ... det_model=...)")
    out: dict[str, Any] = {"kind": kind}
    side = body.get("points_per_side", 16)
    if isinstance(side, bool) or not isinstance(side, int) or not 1 <= side <= 64:
        raise BadRequest(f"points_per_side: expected an integer in 1..64, got {side!r}")
    out["points_per_side"] = side
    for name, default in (("pred_iou_thresh", 0.88), ("stability_score_thresh", 0.95)):
        value = body.get(name, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
            raise BadRequest(f"{name}: expected a number in [0, 1], got {value!r}")
        out[name] = float(value)
    return out


class Proposer:
    """Makes proposals with the segmenter's network; ``detector`` is a box source or None."""

    def __init__(self, segmenter: Segmenter, detector: Any = None) -> None:
        self.segmenter = segmenter
        self.detector = detector
        self._lock = threading.Lock()  # one segment-everything run at a time

    def everything(
        self, image: np.ndarray, points_per_side: int, pred_iou: float, stability: float
    ) -> list[dict[str, Any]]:
        """Meta's automatic mask generator on ``image`` (H, W, 3) uint8 RGB, on a fork of the
        segmenter's engine (its own current image; the network is shared).

        Raises:
            BadRequest: the engine cannot segment everything (GrabCut).
        """
        from samkit.automatic import SamAutomaticMaskGenerator
        from samkit.engine import fork_engine, has_everything

        engine = self.segmenter.engine
        if not has_everything(engine):
            raise BadRequest(
                f"kind: 'everything' needs a SAM model; this annotator runs the {engine.backend} "
                "engine, which only segments objects given by clicks or boxes"
            )
        generator = SamAutomaticMaskGenerator(
            fork_engine(engine),
            points_per_side=points_per_side,
            pred_iou_thresh=pred_iou,
            stability_score_thresh=stability,
            output_mode="coco_rle",
        )
        with self._lock:
            records = generator.generate(image)
        records.sort(key=lambda r: -r["predicted_iou"])
        return [
            {"rle": r["segmentation"], "score": float(r["predicted_iou"]), "label": None}
            for r in records
        ]

    def detections(
        self, key: str, load: Callable[[], np.ndarray], rel: str, classes: Sequence[str]
    ) -> list[dict[str, Any]]:
        """The detector's boxes, each decoded to one mask from the cached embedding; the label
        is the detector's class name when it is one of ``classes``."""
        dets = self.detector(load(), rel)
        out = []
        for box, cid, score in zip(dets.boxes, dets.class_ids, dets.scores, strict=True):
            pred = self.segmenter.predict(key, load, None, None, box, multimask=False)
            name = self.detector.names.get(int(cid))
            label = name if name in classes else None
            out.append({"rle": coco_rle(pred.masks[0]), "score": float(score), "label": label})
        return out
