"""COCO mask AP of detection-prompted masks via pycocotools' COCOeval (``segm``)."""

from __future__ import annotations

import contextlib
import io
from typing import Any

__all__ = ["mask_ap"]

_STATS = ("ap", "ap50", "ap75", "ap_small", "ap_medium", "ap_large",
          "ar1", "ar10", "ar100", "ar_small", "ar_medium", "ar_large")  # fmt: skip


def mask_ap(
    images: list[dict[str, Any]],
    gt: list[tuple[int, str, dict[str, Any], int]],
    dets: list[tuple[int, str, dict[str, Any], float]],
) -> dict[str, Any]:
    """COCOeval ``segm`` statistics.

    Args:
        images: COCO image entries (id, file_name, height, width).
        gt: ``(image_id, category name, compressed RLE, area)`` per ground-truth instance.
        dets: ``(image_id, category name, compressed RLE, score)`` per detection.

    Categories are matched by name; when no detection name is a ground-truth name (e.g. a
    class-agnostic detector or mask PNGs without classes) every instance and detection is one
    category (``class_agnostic: true`` in the result).
    """
    try:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    except ImportError:
        raise ImportError(
            "the detections protocol needs pycocotools: pip install pycocotools"
        ) from None
    gt_names = sorted({g[1] for g in gt})
    agnostic = not ({d[1] for d in dets} & set(gt_names))
    ids = {n: i + 1 for i, n in enumerate(gt_names)}

    def cat(name: str) -> int:
        return 1 if agnostic else ids.get(name, 0)

    anns = [
        {"id": k + 1, "image_id": iid, "category_id": cat(name), "segmentation": rle,
         "area": area, "iscrowd": 0, "bbox": _bbox(rle)}
        for k, (iid, name, rle, area) in enumerate(gt)
    ]  # fmt: skip
    cats = (
        [{"id": 1, "name": "object"}]
        if agnostic
        else [{"id": i, "name": n} for n, i in ids.items()]
    )
    results = [
        {"image_id": iid, "category_id": cat(name), "segmentation": rle, "score": score}
        for iid, name, rle, score in dets
        if cat(name)
    ]
    out: dict[str, Any] = {"class_agnostic": agnostic, "detections": len(results), "n": len(anns)}
    if not anns or not results:
        return {**out, **dict.fromkeys(_STATS, float("nan"))}
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = {"images": images, "annotations": anns, "categories": cats}
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(results)
        ev = COCOeval(coco_gt, coco_dt, "segm")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    # COCOeval writes -1 where a bucket has no ground truth: NaN (null in metrics.json).
    stats = {k: float(v) if v >= 0 else float("nan") for k, v in zip(_STATS, ev.stats, strict=True)}
    return {**out, **stats}


def _bbox(rle: dict[str, Any]) -> list[float]:
    from pycocotools import mask as mask_utils

    return [float(v) for v in mask_utils.toBbox(rle)]
