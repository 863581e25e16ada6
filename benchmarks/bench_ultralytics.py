"""Optional Ultralytics rows of the engine benchmark (only when ``ultralytics`` is installed).

Ultralytics' SAM predictor gets the same seeded weights as samkit and is timed on the same tasks
in a process of its own (:func:`ultralytics_times`, run through
:func:`common.in_child`): imported and run in the benchmark's process it slowed samkit
and the reference by 15 % to 2x in the runs after it. FastSAM-s (YOLOv8s-seg
architecture) and YOLOv8n-seg are *other models*, built from their architecture files with
random weights (nothing is downloaded), so their times include detection post-processing on
random outputs and are indicative only.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from common import Timing, fmt_seconds


def _sam_predictor(name: str) -> Any:
    from ultralytics.models.sam import Predictor
    from ultralytics.models.sam.build import build_mobile_sam, build_sam_vit_b

    from common import build_models

    model = build_mobile_sam() if name == "mobile_sam" else build_sam_vit_b()
    _, state = build_models(name)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or any("head" not in k for k in missing):
        raise RuntimeError(f"key mismatch: {missing[:3]} {unexpected[:3]}")
    overrides = {
        "task": "segment",
        "mode": "predict",
        "imgsz": 1024,
        "device": "cpu",
        "verbose": False,
        "save": False,
    }
    pred = Predictor(overrides=overrides)
    pred.setup_model(model=model, verbose=False)
    return pred


def _median(fn: Any, repeats: int) -> Timing:
    fn()
    timing = Timing("ultralytics")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        timing.times.append(time.perf_counter() - start)
    return timing


def ultralytics_tasks(
    name: str, image: np.ndarray, boxes: np.ndarray
) -> dict[str, Callable[[], Any]] | None:
    """Ultralytics' SAM predictor on the engine tasks (same weights), or None when it is not
    installed or fails to build. image (H, W, 3) RGB; boxes (100, 4) XYXY original pixels."""
    try:
        import ultralytics
    except ImportError:
        print("ultralytics is not installed: its rows are skipped (pip install ultralytics)")
        return None
    try:
        pred = _sam_predictor(name)
    except Exception as err:
        print(
            f"  ultralytics {ultralytics.__version__} {name}: failed ({type(err).__name__}: {err})"
        )
        return None
    bgr = np.ascontiguousarray(image[..., ::-1])
    h, w = image.shape[:2]
    point = [[w * 0.45, h * 0.4]]
    box_list = boxes.tolist()
    return {
        "encoder": lambda: pred.set_image(bgr),
        "point": lambda: pred(points=point, labels=[1]),
        "boxes100": lambda: pred(bboxes=box_list),
    }


def ultralytics_times(
    name: str, repeats: int, threads: int | None
) -> dict[str, list[float]] | None:
    """Run in a child process: seconds per run of each engine task for Ultralytics' SAM (after
    one warm-up run), on the benchmark's scene and boxes; None without Ultralytics."""
    from common import boxes_100, scene
    from samkit.device import set_cpu_threads

    set_cpu_threads(threads)
    image = scene()
    tasks = ultralytics_tasks(name, image, boxes_100(*image.shape[:2]))
    if tasks is None:
        return None
    out = {}
    with torch.inference_mode():
        for task, fn in tasks.items():
            n = repeats if task != "boxes100" else max(1, repeats // 2 + 1)
            out[task] = _median(fn, n).times
    return out


def other_models_rows(repeats: int, threads: int | None) -> list[list[Any]]:
    """Run in a child process: :func:`bench_other_models` on the benchmark's scene."""
    from common import scene
    from samkit.device import set_cpu_threads

    set_cpu_threads(threads)
    return bench_other_models(scene(), repeats)


def bench_other_models(image: np.ndarray, repeats: int) -> list[list[Any]]:
    """FastSAM-s and YOLOv8n-seg rows (other models, random weights); [] without ultralytics."""
    try:
        from ultralytics import YOLO
    except ImportError:
        return []
    rows: list[list[Any]] = []
    bgr = np.ascontiguousarray(image[..., ::-1])
    for label, arch, imgsz in (
        ("FastSAM-s", "yolov8s-seg.yaml", 1024),
        ("YOLOv8n-seg", "yolov8n-seg.yaml", 640),
    ):
        try:
            yolo = YOLO(arch)
            run = lambda yolo=yolo, imgsz=imgsz: yolo.predict(  # noqa: E731
                bgr, imgsz=imgsz, device="cpu", verbose=False, max_det=100, conf=0.4
            )
            t = _median(run, repeats)
        except Exception as err:
            print(f"  {label}: failed ({type(err).__name__}: {err})")
            continue
        net: Any = yolo.model
        params = sum(p.numel() for p in net.parameters()) / 1e6
        size = params * 1e6 * 2 / 2**20  # Ultralytics ships fp16 weights
        print(f"  {label} (other model, random weights, imgsz {imgsz}): {fmt_seconds(t.median)}")
        rows.append(
            [
                f"{label} (other model, random weights, imgsz {imgsz})",
                f"~{size:.1f} MB (fp16)",
                f"{params:.2f} M",
                f"{t.median * 1e3:.0f}",
            ]
        )
    torch.set_grad_enabled(True)
    return rows
