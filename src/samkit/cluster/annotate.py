"""Auto-annotation on a Ray cluster: the same label files as :func:`samkit.auto_annotate`.

Pipeline (Ray Data, streaming): image paths -> box source (detector actors) -> SAM encoder
(encoder actors, ``gpus_per_actor`` GPUs each) -> decode, post-process and write the label files
(CPU actors) -> the driver, which counts finished images and, at the end, writes ``data.yaml``
and merges the COCO parts, in the image list's order, into ``instances.json``.

Resume and fault tolerance come from the per-image outputs: an image counts as done when every
requested label file (and its COCO part) exists, each written atomically; a rerun skips done
images, and an image redone after an actor died writes the very same bytes.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from samkit.cluster.runtime import (
    ModelSpec,
    RayOptions,
    model_spec,
    ray_session,
    stage_args,
    watched_rows,
)
from samkit.cluster.stages import DecodeWriteStage, DetectStage, EncodeStage, unpack

if TYPE_CHECKING:
    from samkit.annotate.state import AnnotateRun

__all__ = ["annotate_on_ray", "run_annotate"]


def annotate_on_ray(
    images: Sequence[tuple[Path, str]],
    *,
    source_args: dict[str, Any],
    filters: dict[str, Any],
    writer_args: dict[str, Any],
    names: dict[int, str],
    coco_ids: dict[int, int],
    spec: ModelSpec,
    min_area: int,
    batch: int | None,
    options: RayOptions,
    progress: bool = True,
) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """Run the cluster pipeline over ``images`` ((path, rel) pairs still to label).

    Returns one record per image (``rel``, ``objects``, ``dropped``, ``error``, class ids)
    and the mean seconds per image of each stage (``detect``, ``encode``, ``decode``).
    """
    from tqdm.auto import tqdm

    from samkit.annotate.detectors import make_box_source
    from samkit.annotate.writers import DatasetWriter

    if not images:
        return [], {}
    source_factory = functools.partial(make_box_source, **source_args)
    writer_factory = functools.partial(DatasetWriter, **writer_args)
    records: list[dict[str, Any]] = []
    clocks = {"detect": 0.0, "encode": 0.0, "decode": 0.0}
    with ray_session(options) as ray:
        items = [{"path": str(p), "rel": rel, "error": ""} for p, rel in images]
        ds = ray.data.from_items(items, override_num_blocks=len(items))
        cpus = options.cpus_per_actor
        ds = ds.map_batches(**stage_args(ray, DetectStage, options.detector_actors, 1, cpus=cpus,
                                     source_factory=source_factory, filters=filters))  # fmt: skip
        ds = ds.map_batches(**stage_args(ray, EncodeStage, options.encoder_actors, options.encode_batch,
                                     gpus=options.gpus_per_actor, cpus=cpus, spec=spec))  # fmt: skip
        ds = ds.map_batches(**stage_args(
            ray, DecodeWriteStage, options.decoder_actors, options.decode_batch, cpus=cpus,
            spec=ModelSpec(spec.model, "cpu"), writer_factory=writer_factory, names=names,
            coco_ids=coco_ids, min_area=min_area, batch=batch,
        ))  # fmt: skip
        bar = tqdm(total=len(items), unit="img", disable=not progress, desc="annotate (ray)")
        start = time.perf_counter()
        try:
            for row in watched_rows(ds.iter_rows()):
                records.append(_record(row))
                for stage in clocks:
                    clocks[stage] += float(row.get(f"t_{stage}", 0.0))
                bar.update(1)  # the image's label files are written
                bar.set_postfix(img_s=f"{len(records) / (time.perf_counter() - start):.2f}")
        finally:
            bar.close()
    return records, {k: v / len(records) for k, v in clocks.items()}


def _record(row: dict[str, Any]) -> dict[str, Any]:
    error = str(row.get("error") or "")
    classes = unpack(row["classes"])["class_ids"].tolist() if not error else []
    return {
        "rel": str(row["rel"]),
        "error": error,
        "objects": int(row.get("objects", 0)) if not error else 0,
        "dropped": int(row.get("dropped", 0)) if not error else 0,
        "classes": classes,
    }


def run_annotate(
    run: AnnotateRun,
    images: Sequence[tuple[Path, str]],
    *,
    sam_model: Any,
    device: str,
    filters: dict[str, Any],
    source_args: dict[str, Any],
    min_area: int,
    batch: int | None,
    overwrite: bool,
    options: RayOptions,
    progress: bool,
) -> dict[str, float]:
    """The per-image part of :func:`samkit.auto_annotate` on Ray. ``run`` is the prepared run
    (its writer, names, COCO ids, summary and ``fail``); returns the seconds per image of
    each stage."""
    todo = []
    for path, rel in images:
        problem = run.refuse(rel)
        if problem:
            run.fail(rel, problem)
        elif not overwrite and run.writer.is_done(rel):
            run.summary.skipped += 1
        else:
            todo.append((path, rel))
    writer_args = {
        "output_dir": run.writer.output_dir,
        "formats": run.writer.formats,
        "segmentation": run.writer.segmentation,
        "polygon_mode": run.polygon_mode,
        "tolerance": run.writer.tolerance,
    }
    coco_ids = {**(run.source.coco_ids or {}), **run.coco_ids}
    records, clocks = annotate_on_ray(
        todo,
        source_args=source_args,
        filters=filters,
        writer_args=writer_args,
        names=run.names,
        coco_ids=coco_ids,
        spec=model_spec(sam_model, device),
        min_area=min_area,
        batch=batch,
        options=options,
        progress=progress,
    )
    for rec in records:
        if rec["error"]:
            run.fail(rec["rel"], rec["error"])
            continue
        run.summary.annotated += 1
        run.summary.objects += rec["objects"]
        run.summary.empty += rec["objects"] == 0
        run.summary.dropped += rec["dropped"]
        for c in rec["classes"]:
            run.names.setdefault(int(c), str(c))
            run.coco_ids.setdefault(int(c), run.source.coco_id(int(c)))
    return clocks
