"""Segment everything over a folder on a Ray cluster (``samkit predict source=folder/
engine=ray``): each image is segmented by an actor holding the model, which writes the same
overlay and label files as the single-process run; the driver writes ``predictions.json`` in
the source's order at the end.

The generator encodes each crop it needs itself, so encoding and decoding share one actor
stage here (the auto-annotation pipeline splits them).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from samkit.cluster.runtime import ModelSpec, RayOptions, ray_session, stage_args, watched_rows
from samkit.cluster.stages import Batch, per_row

__all__ = ["EverythingStage", "everything_on_ray"]


class EverythingStage:
    """Image path -> everything masks -> overlay / label files; the row gets the image's
    :meth:`Results.summary` as JSON and its mask count."""

    def __init__(self, spec: ModelSpec, everything: dict[str, Any], run_dir: str,
                 save: bool, save_txt: bool) -> None:  # fmt: skip
        from samkit.front import SamFront

        self.front = SamFront(spec.build())
        self.everything = everything
        self.run_dir = Path(run_dir)
        self.save, self.save_txt = save, save_txt

    def __call__(self, batch: Batch) -> Batch:
        return per_row(batch, self._one, "t_everything", {"summary": "", "masks": 0})

    def _one(self, row: dict[str, Any]) -> dict[str, Any]:
        from samkit.call_args import CallOptions, write_result
        from samkit.cluster.stages import read_rgb

        path = str(row["path"])
        image = read_rgb(path)
        result = self.front.segment_everything(image, path=path, progress=False, **self.everything)
        opts = CallOptions(save=self.save, save_txt=self.save_txt)
        write_result(result, self.run_dir, str(row["stem"]), opts)
        row["summary"] = json.dumps(result.image_summary())
        row["masks"] = len(result)
        return row


def everything_on_ray(
    images: list[tuple[str, str]],
    spec: ModelSpec,
    everything: dict[str, Any],
    run_dir: Path,
    *,
    save: bool,
    save_txt: bool,
    options: RayOptions,
    progress: bool,
) -> tuple[list[dict[str, Any]], list[dict[str, str]], float]:
    """Segment ``images`` ((path, output stem) pairs). Returns the per-image summaries in the
    given order, the failures (``{"path", "error"}``) and the mean seconds per image."""
    from tqdm.auto import tqdm

    rows: dict[str, dict[str, Any]] = {}
    with ray_session(options) as ray:
        items = [{"path": p, "stem": s, "error": ""} for p, s in images]
        ds = ray.data.from_items(items, override_num_blocks=max(1, len(items)))
        ds = ds.map_batches(**stage_args(
            ray, EverythingStage, options.encoder_actors, options.encode_batch,
            gpus=options.gpus_per_actor, cpus=options.cpus_per_actor, spec=spec,
            everything=everything, run_dir=str(run_dir), save=save, save_txt=save_txt,
        ))  # fmt: skip
        start = time.perf_counter()
        with tqdm(
            total=len(items), unit="img", desc="everything (ray)", disable=not progress
        ) as bar:
            for row in watched_rows(ds.iter_rows()):
                rows[str(row["stem"])] = row
                bar.update(1)  # its files are written
                bar.set_postfix(img_s=f"{len(rows) / (time.perf_counter() - start):.2f}")
    summaries, failures = [], []
    for path, stem in images:
        row = rows[stem]
        if row.get("error"):
            failures.append({"path": path, "error": str(row["error"])})
        else:
            summaries.append({"file": stem, **json.loads(str(row["summary"]))})
    seconds = [float(r["t_everything"]) for r in rows.values()]
    return summaries, failures, float(np.mean(seconds)) if seconds else 0.0
