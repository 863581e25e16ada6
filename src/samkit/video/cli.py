"""``samkit track``: prompts on one frame, objects tracked through the video, one indexed PNG
(DAVIS palette) per frame in a new run folder."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from samkit.cli import UsageError
from samkit.io_utils import increment_path
from samkit.video.tracker import Sam2Tracker
from samkit.video.writers import label_map, write_indexed_png

__all__ = ["cli_track"]


def _prompts(args: dict[str, Any]) -> list[tuple[np.ndarray | None, np.ndarray | None, Any]]:
    """(points (K, 2), labels (K,), box (4,)) per object: one per box, one for the points."""
    objects: list[tuple[np.ndarray | None, np.ndarray | None, Any]] = []
    boxes = args.get("bboxes")
    if boxes is not None:
        arr = np.asarray(boxes, dtype=np.float32).reshape(-1, 4) if len(boxes) else None
        if arr is None:
            raise UsageError("bboxes is empty")
        objects += [(None, None, box) for box in arr]
    points = args.get("points")
    if points is not None:
        pts = np.asarray(points, dtype=np.float32).reshape(-1, 2)
        labels = args.get("labels")
        labs = np.ones(len(pts), np.int32) if labels is None else np.asarray(labels, np.int32)
        if labs.reshape(-1).shape[0] != len(pts):
            raise UsageError(f"labels has {labs.size} entries for {len(pts)} points")
        objects.append((pts, labs.reshape(-1), None))
    if not objects:
        raise UsageError(
            "track needs a prompt: points=[[x,y]] (labels=[1]) or bboxes=[x1,y1,x2,y2]"
        )
    return objects


def cli_track(args: dict[str, Any]) -> int:
    """Track the prompted objects forward from ``frame`` and write ``masks/<frame>.png``."""
    from samkit.sam2.build import build_sam2_model
    from samkit.video.meta_api import prompt_points

    objects = _prompts(args)
    device = args.get("device") or ("cuda" if torch.cuda.is_available() else "cpu")
    model = build_sam2_model(args["model"], device)
    tracker = Sam2Tracker(model, fill_hole_area=8, non_overlap_masks=True, window=args["window"])
    session = tracker.start(args["source"])
    frame = int(args["frame"])
    for obj_id, (pts, labs, box) in enumerate(objects, start=1):
        prompt = prompt_points(
            pts, labs, box, True, True, session.video_size, model.image_size, session.device
        )
        tracker.add_points(session, frame, obj_id, prompt)
    run = increment_path(args["project"], args["name"], args["exist_ok"])
    out = run / "masks"
    out.mkdir(exist_ok=True)
    from tqdm.auto import tqdm

    start, count = time.perf_counter(), 0
    with tqdm(total=session.num_frames, unit="frame", desc="track") as bar:
        for result in tracker.propagate(session, frame):
            labels = label_map(result.video_logits.cpu().numpy())
            write_indexed_png(out / f"{result.frame:05d}.png", labels)
            count += 1
            bar.update(1)
    fps = count / max(time.perf_counter() - start, 1e-9)
    print(f"tracked {len(objects)} objects over {count} frames ({fps:.2f} frames/s) -> {out}")
    return 0
