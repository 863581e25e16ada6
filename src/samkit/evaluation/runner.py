"""``samkit.val``: run the protocols over a dataset for one or more models.

Data flow: dataset sample -> image read once -> per model: embedding from the store or one
encoder pass (:func:`samkit.embeddings.encode_cached`) -> every protocol decodes from that
embedding -> per-instance rows -> summaries, table, ``metrics.json``, CSV and plots
(:mod:`samkit.evaluation.report`). Models go through their engine (``SAM(...).engine``: torch, ONNX
Runtime, or any object with the :class:`samkit.engine.Engine` methods).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from samkit.datasets import Dataset, open_dataset
from samkit.embeddings import EmbeddingStore
from samkit.errors import DatasetError, SamkitError
from samkit.evaluation.members import Member, members
from samkit.evaluation.protocols import PROTOCOLS, SELECT
from samkit.evaluation.results import ValResults
from samkit.evaluation.settings import ValSettings

__all__ = ["Member", "ValResults", "check_settings", "val"]


def check_settings(settings: ValSettings, max_images: int | None = None) -> None:
    """SamkitError naming the first setting that is not valid (the numeric ones by the rules
    every long run shares, :mod:`samkit.run_checks`)."""
    from samkit.run_checks import check_run_settings

    numeric = ("batch", "seed", "box_jitter", "min_area", "max_clicks", "gallery")
    check_run_settings({k: getattr(settings, k) for k in numeric}, "val")
    check_run_settings({"max_images": max_images}, "val")
    bad = [p for p in settings.protocols if p not in PROTOCOLS]
    if bad or not settings.protocols:
        raise SamkitError(
            f"protocols must be among {', '.join(PROTOCOLS)}, got {list(settings.protocols)}"
        )
    if settings.select is not None and settings.select not in SELECT:
        raise SamkitError(f"select must be one of {', '.join(SELECT)}, got {settings.select!r}")
    if settings.averaging not in ("instance", "image"):
        raise SamkitError(f"averaging must be 'instance' or 'image', got {settings.averaging!r}")
    if "detections" in settings.protocols and settings.detections is None:
        raise SamkitError("protocol 'detections' needs detections= (a detector or detections JSON)")
    if "teacher" in settings.protocols and settings.teacher is None:
        raise SamkitError("protocol 'teacher' needs teacher= (the teacher model)")


def val(
    model: Any,
    data: str | os.PathLike[str] | Dataset,
    images: str | os.PathLike[str] | None = None,
    protocols: str | Sequence[str] = ("box", "point"),
    *,
    device: str | None = None,
    backend: str | None = None,
    cache: str | os.PathLike[str] | EmbeddingStore | None = None,
    save: bool = True,
    project: str | os.PathLike[str] = "runs",
    name: str = "val",
    plots: bool = True,
    verbose: bool = True,
    progress: bool = True,
    max_images: int | None = None,
    **options: Any,
) -> ValResults:
    """Measure one or more models on a labelled dataset with the named protocols.

    Args:
        model: checkpoint / model name / ONNX export folder (``"sam_b.pt,mobile_sam.pt"`` for
            several, side by side), a :class:`~samkit.model.SAM`, an engine, or a list.
        data: dataset path (:func:`samkit.datasets.open_dataset`) or an opened Dataset.
        images: image folder when not beside the annotations.
        protocols: names from :data:`samkit.evaluation.protocols.PROTOCOLS` (``"box,point"`` works).
        device, backend: for models given by name (see :class:`~samkit.model.SAM`).
        cache: folder for a disk embedding cache (or an EmbeddingStore); embeddings are always
            cached in memory with the model object, so another val call skips the encoder.
        save / project / name: write the report to a new ``project/name``, ``name2``, ...
        plots: IoU histograms, mIoU-vs-clicks curve, worst-instance gallery.
        verbose: print the table (and the progress bar unless ``progress=False``).
        max_images: evaluate the first N images only.
        options: the protocol settings of :class:`~samkit.evaluation.settings.ValSettings`
            (``select``, ``box_jitter``, ``min_area``, ``averaging``, ``max_clicks``,
            ``early_stop``, ``seed``, ``batch``, ``detections``, ``teacher``, ``everything``,
            ``gallery``).
    """
    if isinstance(protocols, str):
        protocols = [p.strip() for p in protocols.split(",") if p.strip()]
    try:
        settings = ValSettings(protocols=tuple(protocols), **options)
    except TypeError as e:
        raise SamkitError(f"unknown val option: {e}") from None
    check_settings(settings, max_images)
    ds = (
        data
        if isinstance(data, Dataset)
        else open_dataset(data, images, min_area=settings.min_area)
    )
    if len(ds) == 0:
        raise DatasetError(
            f"data {getattr(ds, 'root', data)!s}: no images to measure"
            f" ({len(ds.problems)} problems: see the warnings above)"
        )
    run_members = members(model, device, backend, cache)
    from samkit.evaluation.loop import run_loop
    from samkit.evaluation.report import Report

    report = Report(settings, gallery=settings.gallery if plots else 0)
    t0 = time.perf_counter()
    rows, extra = run_loop(
        run_members, ds, settings, report, verbose=verbose and progress, max_images=max_images
    )
    return report.finish(run_members, ds, rows, extra, time.perf_counter() - t0,
                         save=save, project=Path(project), name=name, plots=plots, verbose=verbose)  # fmt: skip
