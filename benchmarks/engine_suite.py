"""The engine benchmark: samkit against the reference implementations, in one run, on the same
machine with the same (seeded random) weights.

Tasks, on a 1280x720 image: the encoder (``set_image``, preprocessing included), one point to
full-resolution masks (``predict``, 3 masks), 100 boxes in one call (``predict_torch``, one
full-resolution mask each). References: Meta's ``segment_anything`` (SAM-B) and the MobileSAM
package, when installed; Ultralytics' SAM when installed (a separately marked row). samkit in
bf16 is reported with its mask IoU against samkit fp32. Segment-everything is measured by
benchmarks/bench_everything.py. Run through ``python benchmarks/bench_engine.py``.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from common import (
    Timing,
    boxes_100,
    build_models,
    fmt_seconds,
    in_child,
    interleave,
    machine_info,
    markdown_table,
    mean_iou,
    peak_memory,
    ratio_line,
    scene,
)

TARGETS = {
    ("mobile_sam", "encoder"): 0.6,
    ("sam_b", "encoder"): 0.8,
    ("mobile_sam", "point"): 0.35,
    ("sam_b", "point"): 0.35,
}
BF16_SPEEDUP = 1.6
BF16_IOU = 0.98
REFERENCE_PACKAGE = {"mobile_sam": "mobile_sam", "sam_b": "segment_anything"}
REFERENCE_KEY = {"mobile_sam": "vit_t", "sam_b": "vit_b"}


def build_reference(name: str, state: dict[str, torch.Tensor]) -> Any | None:
    """The reference predictor with the same weights, or None when its package is missing."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if name == "mobile_sam":
                from mobile_sam import SamPredictor, sam_model_registry
            else:
                from segment_anything import SamPredictor, sam_model_registry
    except ImportError:
        return None
    ref = sam_model_registry[REFERENCE_KEY[name]]()
    missing, unexpected = ref.load_state_dict(state, strict=False)
    if unexpected or any(not k.startswith("image_encoder.") or "head" not in k for k in missing):
        raise RuntimeError(f"reference {name}: key mismatch {missing[:3]} {unexpected[:3]}")
    return SamPredictor(ref.eval())  # MobileSAM caches its attention biases on eval()


def _tasks(pred: Any, image: np.ndarray, boxes_in: torch.Tensor) -> dict[str, Callable[[], Any]]:
    point = np.array([[image.shape[1] * 0.45, image.shape[0] * 0.4]])
    label = np.array([1])
    return {
        "encoder": lambda: pred.set_image(image),
        "point": lambda: pred.predict(point, label, multimask_output=True),
        "boxes100": lambda: pred.predict_torch(None, None, boxes=boxes_in, multimask_output=False),
    }


def _memory_task(name: str, impl: str, task: str) -> Callable[[], Any]:
    """Spawned-child setup for :func:`peak_memory`: build, encode once, return the task."""
    from samkit.predictor import SamPredictor
    from samkit.transforms import apply_boxes

    model, state = build_models(name)
    pred: Any = build_reference(name, state) if impl == "reference" else SamPredictor(model)
    image = scene()
    boxes = boxes_100(*image.shape[:2])
    if impl == "reference":
        boxes_t = pred.transform.apply_boxes_torch(
            torch.as_tensor(boxes, dtype=torch.float), image.shape[:2]
        )
    else:
        boxes_t = torch.as_tensor(apply_boxes(boxes, image.shape[:2], 1024), dtype=torch.float)
    tasks = _tasks(pred, image, boxes_t)
    if task != "encoder":
        tasks["encoder"]()
    return tasks[task]


def bench_model(
    name: str, repeats: int, bf16: bool, reference: bool, memory: bool, ultralytics: bool = False
) -> dict[str, Any]:
    """Time one variant: samkit fp32 (and bf16) against the reference, interleaved."""
    from samkit.predictor import SamPredictor
    from samkit.transforms import apply_boxes

    model, state = build_models(name)
    ours = SamPredictor(model)
    ref = build_reference(name, state) if reference else None
    image = scene()
    h, w = image.shape[:2]
    boxes = boxes_100(h, w)
    ours_boxes = torch.as_tensor(apply_boxes(boxes, (h, w), 1024), dtype=torch.float)
    impls: dict[str, dict[str, Callable[[], Any]]] = {"samkit": _tasks(ours, image, ours_boxes)}
    if ref is not None:
        ref_boxes = ref.transform.apply_boxes_torch(
            torch.as_tensor(boxes, dtype=torch.float), (h, w)
        )
        impls["reference"] = _tasks(ref, image, ref_boxes)
    half = SamPredictor(model, dtype="bf16") if bf16 else None
    if half is not None:
        impls["samkit-bf16"] = _tasks(half, image, ours_boxes)
    result: dict[str, Any] = {"model": name, "times": {}, "memory": {}}
    with torch.inference_mode():
        for task in ("encoder", "point", "boxes100"):
            n = repeats if task != "boxes100" else max(1, repeats // 2 + 1)
            timings = interleave({impl: fns[task] for impl, fns in impls.items()}, n, warmup=1)
            result["times"][task] = {impl: t.times for impl, t in timings.items()}
            for t in timings.values():
                print(f"  {name} {task:9s} {t}")
    if ultralytics:
        from bench_ultralytics import ultralytics_times

        other = in_child(ultralytics_times, name, repeats, torch.get_num_threads())
        for task, times in (other or {}).items():
            result["times"][task]["ultralytics"] = times
            print(f"  {name} {task:9s} {Timing('ultralytics (own process)', times)}")
    if half is not None:
        result["bf16_iou"] = bf16_agreement(ours, half, image, ours_boxes)
        print(f"  {name} bf16 mask IoU vs fp32: {result['bf16_iou']}")
    if memory:
        for impl in [i for i in impls if i in ("samkit", "reference")]:
            for task in ("encoder", "point", "boxes100"):
                result["memory"][f"{impl}/{task}"] = peak_memory(_memory_task, name, impl, task)
    return result


def bf16_agreement(
    fp32: Any, half: Any, image: np.ndarray, boxes: torch.Tensor
) -> dict[str, float]:
    """Mean mask IoU of the bf16 predictor against fp32: one point (3 masks) and 100 boxes."""
    point = np.array([[image.shape[1] * 0.45, image.shape[0] * 0.4]])
    out = {}
    for tag, pred in (("fp32", fp32), ("bf16", half)):
        pred.set_image(image)
        m, _, _ = pred.predict(point, np.array([1]), multimask_output=True)
        mb, _, _ = pred.predict_torch(None, None, boxes=boxes, multimask_output=False)
        out[tag] = (m, mb.cpu().numpy())
    return {
        "point": mean_iou(out["fp32"][0], out["bf16"][0]),
        "boxes100": mean_iou(out["fp32"][1], out["bf16"][1]),
    }


def report(results: list[dict[str, Any]]) -> list[str]:
    """Ratio lines against the targets, from :func:`bench_model` results."""
    lines = []
    for res in results:
        name, times = res["model"], res["times"]
        for task in ("encoder", "point", "boxes100"):
            per = {impl: Timing(impl, ts) for impl, ts in times[task].items()}
            if "ultralytics" in per:
                ours, theirs = per["samkit"].median, per["ultralytics"].median
                lines.append(ratio_line(f"{name} {task} fp32", ours, theirs, against="Ultralytics"))
            if "reference" in per:
                lines.append(
                    ratio_line(
                        f"{name} {task} fp32",
                        per["samkit"].median,
                        per["reference"].median,
                        TARGETS.get((name, task)),
                    )
                )
        if "samkit-bf16" in times["encoder"]:
            fp32 = Timing("", times["encoder"]["samkit"]).median
            half = Timing("", times["encoder"]["samkit-bf16"]).median
            iou = res.get("bf16_iou", {})
            worst = min(iou.values()) if iou else float("nan")
            speedup = fp32 / half
            ok = speedup >= BF16_SPEEDUP and worst >= BF16_IOU
            lines.append(
                f"{name} encoder bf16: {fmt_seconds(half)}, {speedup:.2f}x faster than samkit fp32 "
                f"(target >= {BF16_SPEEDUP}x), mean mask IoU vs fp32 {worst:.4f} "
                f"(target >= {BF16_IOU}) {'PASS' if ok else 'MISS'}"
            )
        for key, mem in res.get("memory", {}).items():
            if mem is not None:
                lines.append(
                    f"{name} peak memory {key}: {mem[0]:.0f} MiB process, +{mem[1]:.0f} MiB for the task"
                )
    return lines


def comparison_table(results: list[dict[str, Any]], extra: list[list[Any]]) -> str:
    """The docs-style table: file size, parameters, CPU ms per image (encoder + one point)."""
    from samkit.registry import VARIANTS

    rows = []
    for res in results:
        name = res["model"]
        model, _ = build_models(name)
        params = sum(p.numel() for p in model.parameters()) / 1e6
        size = VARIANTS[name].weights.size
        t = res["times"]
        for impl in ("samkit", "samkit-bf16", "reference", "ultralytics"):
            if impl not in t["encoder"]:
                continue
            ms = (Timing("", t["encoder"][impl]).median + Timing("", t["point"][impl]).median) * 1e3
            label = {
                "ultralytics": "Ultralytics",
                "reference": REFERENCE_PACKAGE[name],
                "samkit": "samkit",
                "samkit-bf16": "samkit bf16",
            }[impl]
            rows.append(
                [
                    f"{name} ({label})",
                    f"{size / 2**20:.1f} MB" if size else "-",
                    f"{params:.2f} M",
                    f"{ms:.0f}",
                ]
            )
    rows += extra
    return markdown_table(
        ["model", "file size", "parameters", "CPU ms / image (encoder + 1 point)"], rows
    )


def run_engine(
    models: list[str],
    repeats: int | None = None,
    bf16: bool = True,
    reference: bool = True,
    ultralytics: bool = True,
    memory: bool = True,
    threads: int | None = None,
    json_path: str | None = None,
) -> list[dict[str, Any]]:
    """Run the engine benchmark and print ratios, memory and the comparison table."""
    from samkit.device import set_cpu_threads

    set_cpu_threads(threads)
    info = machine_info()
    print("samkit engine benchmark", json.dumps(info))
    results = []
    for name in models:
        n = repeats or (5 if name == "mobile_sam" else 3)
        print(f"[{name}] {n} interleaved runs per task (median reported)")
        results.append(bench_model(name, n, bf16, reference, memory, ultralytics))
    extra: list[list[Any]] = []
    if ultralytics:
        from bench_ultralytics import other_models_rows

        extra = in_child(other_models_rows, max(3, repeats or 3), threads) or []
    print()
    for line in report(results):
        print(line)
    print()
    print(comparison_table(results, extra))
    if json_path:
        Path(json_path).write_text(json.dumps({"machine": info, "results": results}, indent=1))
    return results
