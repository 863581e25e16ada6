"""``samkit.val``: run the protocols over a dataset for one or more models.

Data flow: dataset sample -> image read once -> per model: embedding from the store or one
encoder pass (:func:`samkit.embeddings.encode_cached`) -> every protocol decodes from that
embedding -> per-instance rows -> summaries, table, ``metrics.json``, CSV and plots
(:mod:`samkit.evaluation.report`). Models go through their engine (``SAM(...).engine``: torch, ONNX
Runtime, or any object with the :class:`samkit.engine.Engine` methods).
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from samkit.datasets import Dataset, open_dataset
from samkit.embeddings import EmbeddingStore, model_key
from samkit.errors import SamkitError
from samkit.evaluation.metrics import InstanceResult
from samkit.evaluation.protocols import PROTOCOLS, SELECT
from samkit.evaluation.settings import ValSettings

__all__ = ["Member", "ValResults", "check_settings", "val"]

logger = logging.getLogger("samkit")
_STORES: weakref.WeakKeyDictionary[Any, EmbeddingStore] = weakref.WeakKeyDictionary()


@dataclass
class Member:
    """One model of the run: a label for reports, its engine, its embedding store, and the
    :class:`~samkit.model.SAM` front when there is one (segment everything needs it)."""

    label: str
    engine: Any
    store: EmbeddingStore
    front: Any = None
    encode_s: float = 0.0
    decode_s: dict[str, float] = field(default_factory=dict)
    start: tuple[int, int] = (0, 0)  # the store's (hits, misses) when the run began

    def __post_init__(self) -> None:
        self.start = (self.store.hits, self.store.misses)


@dataclass
class ValResults:
    """What :func:`val` measured.

    metrics: ``{protocol: {number: value}}`` of the first model (``metrics["box"]["miou"]``);
    models: the same per model label; settings: the full protocol (as in ``metrics.json``);
    instances: every per-instance row; dataset: counts of the data read; speed: seconds and
    rates per model; save_dir: the run folder (None when ``save=False``).
    """

    metrics: dict[str, dict[str, Any]]
    models: dict[str, dict[str, dict[str, Any]]]
    settings: dict[str, Any]
    instances: list[InstanceResult]
    dataset: dict[str, Any]
    speed: dict[str, dict[str, Any]]
    save_dir: Path | None = None

    def table(self) -> str:
        """The terminal table (overall and by size bucket, models side by side)."""
        from samkit.evaluation.report import format_table

        return format_table(self.models)


def _label(model: Any, index: int) -> str:
    if isinstance(model, (str, os.PathLike)):
        return Path(model).name
    checkpoint = getattr(model, "checkpoint", None)
    if checkpoint:
        return Path(checkpoint).name
    return f"model{index}"


def _resolve(item: Any, i: int, device: str | None, backend: str | None) -> tuple[Any, Any]:
    """``(front or None, engine)`` of one model: a checkpoint / name / export folder becomes a
    :class:`~samkit.model.SAM`; a SAM front gives its ``engine``; an object with the engine
    methods (``set_image``, ``decode``, ``upscale`` ...; e.g. a GrabCut engine) is used as is;
    a ``Sam`` network or a predictor goes through :func:`samkit.engine.as_engine`."""
    from samkit.engine import as_engine
    from samkit.model import SAM

    if isinstance(item, (str, os.PathLike)):
        item = SAM(item, device=device, backend=backend)
    if isinstance(item, SAM):
        return item, item.engine
    if all(hasattr(item, a) for a in ("set_image", "decode", "upscale", "get_state")):
        return None, item
    try:
        return None, as_engine(item, device=device)
    except SamkitError as e:
        raise SamkitError(f"model[{i}]: {e}") from None


def _members(model: Any, device: str | None, backend: str | None, cache: Any) -> list[Member]:
    """Models from ``model``: a path / name (comma-separated for several), a SAM, an engine,
    or a list of these."""
    items: list[Any]
    if isinstance(model, str):
        items = [m.strip() for m in model.split(",") if m.strip()]
    elif isinstance(model, (list, tuple)):
        items = list(model)
    else:
        items = [model]
    if not items:
        raise SamkitError("model must name at least one model")
    members, labels = [], set()
    for i, item in enumerate(items):
        label = _label(item, i)
        while label in labels:
            label += "'"
        labels.add(label)
        front, engine = _resolve(item, i, device, backend)
        members.append(Member(label, engine, _store(front or engine, cache), front))
    return members


def _store(front: Any, cache: Any) -> EmbeddingStore:
    """The model's embedding store: the given one, a disk store under ``cache``, or a memory
    store kept with the model object so later val calls reuse its embeddings."""
    if isinstance(cache, EmbeddingStore):
        return cache
    try:
        store = _STORES.get(front)
    except TypeError:
        store = None
    if store is None or (
        cache is not None and (store.folder is None or store.folder.parent != Path(cache))
    ):
        key = getattr(front, "key", None)
        if key is None and (hasattr(front, "model") or hasattr(front, "state_dict")):
            key = model_key(front)
        if key is None:  # an engine without weights to hash: memory only, for this object
            if cache is not None:
                logger.warning("cache=%s ignored for %s: no model key", cache, type(front).__name__)
            key, cache = f"engine{id(front)}", None
        store = EmbeddingStore(cache, str(key), memory_items=8)
        with contextlib.suppress(TypeError):
            _STORES[front] = store
    return store


def check_settings(settings: ValSettings) -> None:
    """SamkitError naming the first setting that is not valid."""
    bad = [p for p in settings.protocols if p not in PROTOCOLS]
    if bad or not settings.protocols:
        raise SamkitError(
            f"protocols must be among {', '.join(PROTOCOLS)}, got {list(settings.protocols)}"
        )
    if settings.select is not None and settings.select not in SELECT:
        raise SamkitError(f"select must be one of {', '.join(SELECT)}, got {settings.select!r}")
    if settings.averaging not in ("instance", "image"):
        raise SamkitError(f"averaging must be 'instance' or 'image', got {settings.averaging!r}")
    if not isinstance(settings.max_clicks, int) or settings.max_clicks < 1:
        raise SamkitError(f"max_clicks must be a positive int, got {settings.max_clicks!r}")
    if not settings.box_jitter >= 0:
        raise SamkitError(
            f"box_jitter must be >= 0 (fraction of the box side), got {settings.box_jitter!r}"
        )
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
    check_settings(settings)
    ds = (
        data
        if isinstance(data, Dataset)
        else open_dataset(data, images, min_area=settings.min_area)
    )
    members = _members(model, device, backend, cache)
    from samkit.evaluation.loop import run_loop
    from samkit.evaluation.report import Report

    report = Report(settings, gallery=settings.gallery if plots else 0)
    t0 = time.perf_counter()
    rows, extra = run_loop(
        members, ds, settings, report, verbose=verbose and progress, max_images=max_images
    )
    return report.finish(members, ds, rows, extra, time.perf_counter() - t0,
                         save=save, project=Path(project), name=name, plots=plots, verbose=verbose)  # fmt: skip
