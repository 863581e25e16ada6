"""The protocols whose truth or prompts do not come from one instance alone: ``everything``
(automatic masks matched to ground truth), ``detections`` (detector boxes, COCO mask AP) and
``teacher`` (another model's masks as the ground truth -- the hook for distillation checks).

Each is an accumulator: ``add(ctx, image_rgb) -> rows`` per image, ``summary(rows) -> dict``
at the end.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from samkit.datasets import Dataset
from samkit.errors import SamkitError
from samkit.evaluation.clicks import interior_point
from samkit.evaluation.metrics import InstanceResult, mask_iou, miou_summary
from samkit.evaluation.protocols import Context, decode_select
from samkit.masks import coco_rle, rle_to_mask
from samkit.prompts import ObjectPrompt

__all__ = ["make_accumulator"]


def _iou_matrix(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """IoU of every pred ``(N, H, W)`` with every gt ``(M, H, W)`` -> ``(N, M)`` float64."""
    p = pred.reshape(len(pred), -1).astype(np.float32)
    g = gt.reshape(len(gt), -1).astype(np.float32)
    inter = (p @ g.T).astype(np.float64)
    union = p.sum(1)[:, None] + g.sum(1)[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


class EverythingAcc:
    """Segment everything, then each instance's best IoU with any automatic mask."""

    def __init__(self, member: Any, settings: Any) -> None:
        if member.front is None or not hasattr(member.front, "segment_everything"):
            raise SamkitError(
                f"protocol 'everything' needs a SAM model, {member.label} is an engine"
            )
        self.front, self.settings = member.front, settings
        self.masks_per_image: list[int] = []

    def add(self, ctx: Context, image: np.ndarray) -> list[InstanceResult]:
        res = self.front.segment_everything(image, **self.settings.everything)
        self.masks_per_image.append(len(res.rles))
        insts = ctx.sample.instances
        if not insts:
            return []
        gts = np.stack([i.mask for i in insts])
        if res.rles:
            preds = np.stack([rle_to_mask(r) for r in res.rles])
            best = _iou_matrix(preds, gts).max(axis=0)
        else:
            best = np.zeros(len(insts))
        rows = []
        for inst, iou in zip(insts, best, strict=True):
            rows.append(InstanceResult(ctx.model, "everything", ctx.sample.name, inst.instance_id,
                                       inst.category, inst.area, float(iou)))  # fmt: skip
        return rows

    def summary(self, rows: list[InstanceResult]) -> dict[str, Any]:
        out = miou_summary(rows, self.settings.averaging)
        ious = np.array([r.iou for r in rows])
        out["recall@0.5"] = float((ious >= 0.5).mean()) if len(ious) else float("nan")
        out["recall@0.75"] = float((ious >= 0.75).mean()) if len(ious) else float("nan")
        out["masks_per_image"] = (
            float(np.mean(self.masks_per_image)) if self.masks_per_image else 0.0
        )
        return out


class _ResultsBoxes:
    """A COCO results list (``[{"image_id", "category_id", "bbox" XYWH, "score"}]``, as
    detectors write for COCOeval) matched to images through the ground-truth JSON's ids."""

    def __init__(self, path: Path, records: list[dict[str, Any]], gt_json: Path | None) -> None:
        if gt_json is None:
            raise SamkitError(
                f"detections {path}: a results list needs a COCO dataset (its image ids)"
            )
        gt = json.loads(gt_json.read_text(encoding="utf-8"))
        ids = {int(i["id"]): str(i["file_name"]) for i in gt["images"]}
        cats = {int(c["id"]): str(c.get("name", c["id"])) for c in gt.get("categories", [])}
        self.names = dict(enumerate(sorted(set(cats.values()))))
        index = {n: i for i, n in self.names.items()}
        self.by_file: dict[str, list[tuple[float, ...]]] = {}
        for r in records:
            x, y, w, h = (float(v) for v in r["bbox"])
            cls = index.get(cats.get(int(r["category_id"]), ""), -1)
            row = (x, y, x + w, y + h, float(cls), float(r.get("score", 1.0)))
            self.by_file.setdefault(ids.get(int(r["image_id"]), ""), []).append(row)

    def __call__(self, image: np.ndarray, rel_path: str) -> Any:
        from samkit.annotate.detectors import Detections

        rows = [r for r in self.by_file.get(rel_path, []) if r[4] >= 0]
        if not rows:
            return Detections.empty()
        a = np.array(rows)
        return Detections.create(a[:, :4], a[:, 4].astype(np.int64), a[:, 5])


def _box_source(spec: Any, ds: Dataset) -> Any:
    path = Path(spec) if isinstance(spec, (str, Path)) else None
    if path is not None and path.suffix.lower() == ".json" and path.is_file():
        records = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(records, list):
            return _ResultsBoxes(path, records, ds.root if ds.format == "coco" else None)
    from samkit.annotate.detectors import make_box_source

    try:
        return make_box_source(spec, arg="detections")
    except ValueError as e:
        raise SamkitError(f"detections: {e}") from None


class DetectionsAcc:
    """Detector boxes -> masks -> COCO results; COCO mask AP against the dataset's instances."""

    def __init__(self, member: Any, settings: Any, ds: Dataset) -> None:
        self.source = _box_source(settings.detections, ds)
        self.settings = settings
        self.gt_images: list[dict[str, Any]] = []
        self.gt_anns: list[tuple[int, str, dict[str, Any], int]] = []
        self.dets: list[tuple[int, str, dict[str, Any], float]] = []

    def add(self, ctx: Context, image: np.ndarray) -> list[InstanceResult]:
        s = ctx.sample
        iid = len(self.gt_images) + 1
        self.gt_images.append(
            {"id": iid, "file_name": s.name, "height": s.height, "width": s.width}
        )
        for inst in s.instances:
            self.gt_anns.append((iid, inst.category, coco_rle(inst.mask), inst.area))
        det = self.source(image, s.name)
        names = getattr(self.source, "names", {}) or {}
        b = self.settings.batch
        for start in range(0, len(det), b):
            objs = [
                ObjectPrompt(box=np.asarray(x, np.float64)) for x in det.boxes[start : start + b]
            ]
            _, masks, _ = decode_select(ctx.engine, objs, "single", np.zeros(0))
            for k, mask in enumerate(masks):
                cls = int(det.class_ids[start + k])
                score = float(det.scores[start + k])
                self.dets.append((iid, names.get(cls, str(cls)), coco_rle(mask), score))
        return []

    def summary(self, rows: list[InstanceResult]) -> dict[str, Any]:
        from samkit.evaluation.coco_eval import mask_ap

        return mask_ap(self.gt_images, self.gt_anns, self.dets)


class TeacherAcc:
    """Student vs teacher masks for the same prompts: a box and an interior point per instance
    (or, on unlabelled images, a 3x3 grid of points and the boxes of the teacher's masks)."""

    def __init__(self, member: Any, settings: Any) -> None:
        from samkit.evaluation.members import members

        self.teacher = members(settings.teacher, None, None, None)[0]
        self.settings = settings

    def _prompts(self, ctx: Context) -> list[tuple[str, ObjectPrompt]]:
        s = ctx.sample
        if s.instances:
            out = [("box", ObjectPrompt(box=i.box)) for i in s.instances]
            pts = [interior_point(i.mask) for i in s.instances]
        else:
            out = []
            pts = [
                ((c + 0.5) * s.width / 3, (r + 0.5) * s.height / 3)
                for r in range(3)
                for c in range(3)
            ]
        out += [
            ("point", ObjectPrompt(points=np.array([p], np.float64), labels=np.array([1])))
            for p in pts
        ]
        return out

    def add(self, ctx: Context, image: np.ndarray) -> list[InstanceResult]:
        from samkit.embeddings import EmbeddingStore, encode_cached
        from samkit.masks import mask_to_box

        t = self.teacher
        encode_cached(t.engine, t.store, image, EmbeddingStore.key(ctx.sample.path))
        prompts = self._prompts(ctx)
        rows: list[InstanceResult] = []
        for kind in ("point", "box"):
            objs = [o for k, o in prompts if k == kind]
            select = "single" if kind == "box" else "best"
            if not objs:
                continue
            _, ref, _ = decode_select(t.engine, objs, select, np.zeros(0))
            _, got, _ = decode_select(ctx.engine, objs, select, np.zeros(0))
            ious = mask_iou(got, ref)
            for j, iou in enumerate(ious):
                rows.append(InstanceResult(ctx.model, "teacher", ctx.sample.name, f"{kind}{j}", kind,
                                           int(ref[j].sum()), float(iou), prompt=kind))  # fmt: skip
            if kind == "point" and not ctx.sample.instances:
                prompts += [
                    ("box", ObjectPrompt(box=mask_to_box(m).astype(np.float64)))
                    for m in ref
                    if m.any()
                ]
        return rows

    def summary(self, rows: list[InstanceResult]) -> dict[str, Any]:
        out = miou_summary(rows, self.settings.averaging)
        for kind in ("box", "point"):
            sub = [r for r in rows if r.category == kind]
            out[f"{kind}_miou"] = float(np.mean([r.iou for r in sub])) if sub else float("nan")
        out["teacher"] = self.teacher.label
        return out


def make_accumulator(protocol: str, member: Any, settings: Any, ds: Dataset) -> Any:
    """The accumulator of a non-prompt protocol for one model."""
    if protocol == "everything":
        return EverythingAcc(member, settings)
    if protocol == "detections":
        return DetectionsAcc(member, settings, ds)
    if protocol == "teacher":
        return TeacherAcc(member, settings)
    raise SamkitError(f"unknown protocol {protocol!r}")
