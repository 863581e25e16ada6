"""The prompt protocols of ``samkit val``: how each ground-truth instance is prompted and which
mask is kept. Every protocol is named, documented in :data:`PROTOCOLS` (the text goes into
``metrics.json``) and reproducible: randomness (box jitter) comes from
``numpy.random.default_rng((seed, crc32(image name), instance index))``, independent of order.

Mask selection (``select``): ``"single"`` -- ``multimask_output=False``, the decoder's first
token (SAM's single-mask output); with ``multimask_output=True`` among the 3 candidates:
``"best"`` the highest predicted IoU, ``"first"`` the first candidate, ``"oracle"`` the one with
the highest true IoU. Defaults: ``box`` single, ``point`` / ``center`` / first click of
``clicks`` best; later clicks of ``clicks`` always single (several points are unambiguous, as
in the SAM paper's interactive evaluation).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from samkit.datasets import Sample
from samkit.evaluation.clicks import centroid, interior_point, next_click
from samkit.evaluation.metrics import InstanceResult, mask_iou
from samkit.prompts import ObjectPrompt

__all__ = ["PROMPT_PROTOCOLS", "PROTOCOLS", "SELECT", "Context", "decode_select", "run_prompt"]

SELECT = ("single", "best", "first", "oracle")
PROTOCOLS: dict[str, str] = {
    "box": "one tight XYXY box per instance from its mask (inclusive max, "
    "samkit.masks.mask_to_box), optionally jittered; single-mask output",
    "point": "one positive click at the interior-most pixel of the mask (maximum of the "
    "distance transform, image border = background, ties by lowest row-major index); "
    "multimask output, highest predicted IoU kept",
    "center": "one positive click at the mask centroid (mean pixel x, y; EdgeSAM's 'center'); "
    "multimask output, highest predicted IoU kept",
    "clicks": "iterative clicking (RITM / SimpleClick): first click as 'point', then each click "
    "at the interior-most pixel of the deeper error region (positive for missed object, "
    "negative for false foreground; tie -> negative), all clicks so far plus the previous "
    "low-res logits as mask_input, single-mask output after the first click; up to max_clicks, "
    "an instance stops early once IoU >= 0.90 after >= 5 clicks (IoU carried forward)",
    "everything": "segment everything (automatic mask generator): share of instances matched "
    "by an automatic mask at IoU >= 0.5 and >= 0.75, mean best IoU, masks per image (the "
    "generator encodes the image itself: one more encoder pass per image)",
    "detections": "box prompts from a detector or detections file, one mask per box "
    "(single-mask output) scored by the detection score; COCO mask AP via pycocotools COCOeval",
    "teacher": "agreement with a teacher model: student vs teacher masks (IoU) for the same "
    "box and interior-point prompts; the teacher's masks are the ground truth",
}
PROMPT_PROTOCOLS = ("box", "point", "center", "clicks")
DEFAULT_SELECT = {"box": "single", "point": "best", "center": "best", "clicks": "best"}


@dataclass
class Context:
    """One model on one image: its engine (image already set), the sample, settings, and
    ``keep(row, pred_mask, gt_mask)`` which the report's gallery uses."""

    engine: Any
    sample: Sample
    model: str
    settings: Any
    keep: Callable[[InstanceResult, np.ndarray, np.ndarray], None] | None = None


def decode_select(
    engine: Any, objects: Sequence[ObjectPrompt], select: str, gts: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decode objects (one prompt kind, equal point counts) and keep one mask each.

    Returns low-res logits ``(B, 1, s, s)`` float32, masks ``(B, H, W)`` bool at the original
    size, predicted IoU scores ``(B,)``. ``gts`` ``(B, H, W)`` is read by ``"oracle"`` only.
    """
    low, scores = engine.decode(list(objects), select != "single")
    rows = np.arange(len(objects))
    if select == "oracle":
        cands = low.shape[1]
        ups = [engine.upscale(low[:, c : c + 1]) for c in range(cands)]
        ious = np.stack([mask_iou(u, gts) for u in ups], axis=1)
        pick = np.argmax(ious, axis=1)
        masks = np.stack([ups[c][i] for i, c in enumerate(pick)])
        return low[rows, pick][:, None], masks, scores[rows, pick]
    pick = np.argmax(scores, axis=1) if select == "best" else np.zeros(len(rows), dtype=np.int64)
    chosen = low[rows, pick][:, None]
    return chosen, engine.upscale(chosen), scores[rows, pick]


def _rng(seed: int, image: str, index: int) -> np.random.Generator:
    return np.random.default_rng((seed, zlib.crc32(image.encode()), index))


def jitter_box(box: np.ndarray, jitter: float, rng: np.random.Generator, hw: tuple[int, int]):
    """``box`` XYXY with each coordinate moved by N(0, jitter * side) (side: box width for x,
    height for y), clipped to the image and kept ordered."""
    if jitter <= 0:
        return box
    w, h = box[2] - box[0] + 1, box[3] - box[1] + 1
    out = box + rng.normal(0.0, 1.0, 4) * jitter * np.array([w, h, w, h])
    out = np.clip(out, 0, [hw[1] - 1, hw[0] - 1, hw[1] - 1, hw[0] - 1])
    return np.array(
        [min(out[0], out[2]), min(out[1], out[3]), max(out[0], out[2]), max(out[1], out[3])]
    )


def _prompts(protocol: str, ctx: Context) -> list[tuple[ObjectPrompt, str]]:
    s, out = ctx.sample, []
    for k, inst in enumerate(s.instances):
        if protocol == "box":
            box = jitter_box(inst.box, ctx.settings.box_jitter, _rng(ctx.settings.seed, s.name, k),
                             (s.height, s.width))  # fmt: skip
            text = "box " + " ".join(f"{v:.1f}" for v in box)
            out.append((ObjectPrompt(box=np.asarray(box, np.float64)), text))
            continue
        x, y = interior_point(inst.mask) if protocol in ("point", "clicks") else centroid(inst.mask)
        pts, labels = np.array([[x, y]], np.float64), np.array([1], np.int64)
        out.append((ObjectPrompt(points=pts, labels=labels), f"point {x:.1f} {y:.1f} 1"))
    return out


def run_prompt(protocol: str, ctx: Context) -> list[InstanceResult]:
    """Run ``box`` / ``point`` / ``center`` / ``clicks`` on every instance of the sample."""
    if protocol == "clicks":
        return _run_clicks(ctx)
    select = ctx.settings.select or DEFAULT_SELECT[protocol]
    prompts = _prompts(protocol, ctx)
    rows: list[InstanceResult] = []
    batch = ctx.settings.batch
    for start in range(0, len(prompts), batch):
        part = prompts[start : start + batch]
        insts = ctx.sample.instances[start : start + batch]
        gts = np.stack([i.mask for i in insts])
        _, masks, scores = decode_select(ctx.engine, [p for p, _ in part], select, gts)
        ious = mask_iou(masks, gts)
        for j, inst in enumerate(insts):
            row = InstanceResult(ctx.model, protocol, ctx.sample.name, inst.instance_id,
                                 inst.category, inst.area, float(ious[j]), float(scores[j]),
                                 prompt=part[j][1])  # fmt: skip
            rows.append(row)
            if ctx.keep is not None:
                ctx.keep(row, masks[j], gts[j])
    return rows


def _run_clicks(ctx: Context) -> list[InstanceResult]:
    rows: list[InstanceResult] = []
    batch = ctx.settings.batch
    for start in range(0, len(ctx.sample.instances), batch):
        rows += _click_batch(ctx, ctx.sample.instances[start : start + batch])
    return rows


def _click_batch(ctx: Context, insts: Sequence[Any]) -> list[InstanceResult]:
    """Iterative clicking for a batch of instances, decoded together at every click."""
    st = ctx.settings
    gts = np.stack([i.mask for i in insts])
    n = len(insts)
    clicks: list[list[tuple[float, float, int]]] = [[(*interior_point(m), 1)] for m in gts]
    ious: list[list[float]] = [[] for _ in range(n)]
    scores = np.zeros(n)
    preds = np.zeros_like(gts)
    low: np.ndarray | None = None
    active = list(range(n))
    for k in range(st.max_clicks):
        objs = [
            ObjectPrompt(
                points=np.array([c[:2] for c in clicks[i]], np.float64),
                labels=np.array([c[2] for c in clicks[i]], np.int64),
                mask_logits=None if low is None else low[i],
            )
            for i in active
        ]
        select = (st.select or DEFAULT_SELECT["clicks"]) if k == 0 else "single"
        lo, masks, sc = decode_select(ctx.engine, objs, select, gts[active])
        if low is None:
            low = np.zeros((n, *lo.shape[1:]), np.float32)
        low[active], preds[active], scores[active] = lo, masks, sc
        for i, iou in zip(active, mask_iou(masks, gts[active]), strict=True):
            ious[i].append(float(iou))
        done = {i for i in active if st.early_stop and k + 1 >= 5 and ious[i][-1] >= 0.9}
        active = [i for i in active if i not in done]
        for i in list(active):
            click = next_click(preds[i], gts[i])
            if click is None:  # exact: nothing left to correct
                active.remove(i)
            else:
                clicks[i].append(click)
        if not active:
            break
    return [_click_row(ctx, inst, ious[i], clicks[i], float(scores[i]), preds[i], gts[i])
            for i, inst in enumerate(insts)]  # fmt: skip


def _click_row(ctx: Context, inst: Any, ious: list[float], clicks: list[Any], score: float,
               pred: np.ndarray, gt: np.ndarray) -> InstanceResult:  # fmt: skip
    made = len(ious)
    mc = ctx.settings.max_clicks
    full = ious + [ious[-1]] * (mc - made)
    noc = {
        t: next((k + 1 for k, v in enumerate(full) if v >= int(t) / 100), mc) for t in ("85", "90")
    }
    text = ";".join(f"{x:.0f} {y:.0f} {lab}" for x, y, lab in clicks[:made])
    row = InstanceResult(ctx.model, "clicks", ctx.sample.name, inst.instance_id, inst.category,
                         inst.area, full[-1], score, full, made, noc, "clicks " + text)  # fmt: skip
    if ctx.keep is not None:
        ctx.keep(row, pred, gt)
    return row
