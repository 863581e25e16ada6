"""Numbers of the val protocols: IoU, size buckets, averaging, click statistics.

IoU is computed at the original image resolution on binary masks: ``|P & G| / |P | G|`` (0 when
both are empty), the same value as ``pycocotools.mask.iou`` on their RLEs. Size buckets follow
COCO by the ground-truth mask's pixel area: small ``< 32**2``, medium ``< 96**2``, large the
rest. Averaging ``"instance"`` (default) is the mean over every instance; ``"image"`` the mean
over images of each image's mean (lightning-sam's "micro" choice).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "BUCKETS",
    "InstanceResult",
    "bucket_of",
    "click_summary",
    "mask_iou",
    "miou_summary",
]

BUCKETS = (("small", 0, 32**2), ("medium", 32**2, 96**2), ("large", 96**2, None))


def bucket_of(area: int) -> str:
    """COCO size bucket name of a ground-truth area in pixels."""
    for name, lo, hi in BUCKETS:
        if area >= lo and (hi is None or area < hi):
            return name
    return "large"


def mask_iou(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """IoU of ``pred`` and ``gt`` ``(B, H, W)`` bool, row by row -> ``(B,)`` float64."""
    p = np.asarray(pred, dtype=bool).reshape(len(pred), -1)
    g = np.asarray(gt, dtype=bool).reshape(len(gt), -1)
    inter = np.count_nonzero(p & g, axis=1).astype(np.float64)
    union = np.count_nonzero(p | g, axis=1).astype(np.float64)
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


@dataclass
class InstanceResult:
    """One instance under one protocol and model.

    iou: the protocol's IoU (for ``clicks``, after the last click made). ious: IoU after each
    click (``clicks`` only; carried forward after an early stop). score: the model's predicted
    IoU of the kept mask. clicks: clicks made. noc: ``{"85": n, "90": n}`` (clicks to reach the
    IoU, ``max_clicks`` when never reached). prompt: what was given (box / points), for the CSV.
    """

    model: str
    protocol: str
    image: str
    instance_id: str
    category: str
    area: int
    iou: float
    score: float = float("nan")
    ious: list[float] = field(default_factory=list)
    clicks: int = 0
    noc: dict[str, int] = field(default_factory=dict)
    prompt: str = ""

    @property
    def size(self) -> str:
        return bucket_of(self.area)


def _average(values: Sequence[float], images: Sequence[str], averaging: str) -> float:
    if not len(values):
        return float("nan")
    v = np.asarray(values, dtype=np.float64)
    if averaging == "instance":
        return float(v.mean())
    keys = np.asarray(images)
    return float(np.mean([v[keys == k].mean() for k in dict.fromkeys(images)]))


def miou_summary(rows: Sequence[InstanceResult], averaging: str) -> dict[str, Any]:
    """``{"miou", "miou_instance", "miou_image", "n", "images", "by_size": {bucket: {"miou",
    "n"}}}`` of prompt-protocol rows; ``miou`` uses ``averaging``."""
    ious = [r.iou for r in rows]
    images = [r.image for r in rows]
    out: dict[str, Any] = {
        "miou": _average(ious, images, averaging),
        "miou_instance": _average(ious, images, "instance"),
        "miou_image": _average(ious, images, "image"),
        "n": len(rows),
        "images": len(set(images)),
        "by_size": {},
    }
    for name, _, _ in BUCKETS:
        sub = [r for r in rows if r.size == name]
        out["by_size"][name] = {
            "miou": _average([r.iou for r in sub], [r.image for r in sub], averaging),
            "n": len(sub),
        }
    return out


def click_summary(
    rows: Sequence[InstanceResult], averaging: str, max_clicks: int
) -> dict[str, Any]:
    """The ``clicks`` protocol's numbers: ``miou@k`` for k = 1, 3, 5 (those <= max_clicks),
    ``noc@85`` / ``noc@90`` (mean clicks to reach the IoU, ``max_clicks`` when never),
    ``reach@85`` / ``reach@90`` (share of instances reaching it within ``max_clicks``),
    ``miou_curve`` (mIoU after 1..max_clicks clicks) and ``miou`` = ``miou@5`` (or at
    ``max_clicks`` when fewer), plus ``n`` and ``by_size`` (``miou`` of the same click)."""
    images = [r.image for r in rows]
    curve = [_average([r.ious[k] for r in rows], images, averaging) for k in range(max_clicks)]
    last = min(5, max_clicks) - 1
    out: dict[str, Any] = {"miou": curve[last] if rows else float("nan")}
    for k in (1, 3, 5):
        if k <= max_clicks:
            out[f"miou@{k}"] = curve[k - 1] if rows else float("nan")
    for t in ("85", "90"):
        nocs = [float(r.noc[t]) for r in rows]
        reached = [1.0 if _reached(r, t) else 0.0 for r in rows]
        out[f"noc@{t}"] = _average(nocs, images, averaging)
        out[f"reach@{t}"] = _average(reached, images, averaging)
    out["miou_curve"] = curve
    out["n"] = len(rows)
    out["images"] = len(set(images))
    out["by_size"] = {}
    for name, _, _ in BUCKETS:
        sub = [r for r in rows if r.size == name]
        out["by_size"][name] = {
            "miou": _average([r.ious[last] for r in sub], [r.image for r in sub], averaging),
            "n": len(sub),
        }
    return out


def _reached(row: InstanceResult, threshold: str) -> bool:
    return bool(row.ious) and max(row.ious) >= int(threshold) / 100
