"""The image loop of ``samkit val``: read each image once, one embedding per model (from the
store or one encoder pass), every protocol from that embedding; a progress bar that advances
when an image is done and shows images/s."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from samkit.datasets import Dataset, Problem, Sample
from samkit.embeddings import EmbeddingStore, encode_cached
from samkit.errors import DatasetError
from samkit.evaluation.metrics import InstanceResult
from samkit.evaluation.protocols import PROMPT_PROTOCOLS, Context, run_prompt
from samkit.items import each_item

__all__ = ["run_loop"]

logger = logging.getLogger("samkit")


def _accumulators(members: Sequence[Any], settings: Any, ds: Dataset) -> dict[tuple[str, str], Any]:
    from samkit.evaluation.extra import make_accumulator

    return {
        (m.label, p): make_accumulator(p, m, settings, ds)
        for m in members
        for p in settings.protocols
        if p not in PROMPT_PROTOCOLS
    }


def run_loop(
    members: Sequence[Any],
    ds: Dataset,
    settings: Any,
    report: Any,
    *,
    verbose: bool = True,
    max_images: int | None = None,
) -> tuple[list[InstanceResult], dict[tuple[str, str], Any]]:
    """Every protocol for every model on every image -> (rows, accumulators of the
    non-prompt protocols). An unreadable image (its header or its pixels) is reported in
    ``ds.problems`` with its file and skipped (:func:`samkit.items.each_item`)."""
    from tqdm import tqdm

    n = len(ds) if max_images is None else min(len(ds), int(max_images))
    accs = _accumulators(members, settings, ds)
    rows: list[InstanceResult] = []
    for m in members:
        m.decode_s = dict.fromkeys(settings.protocols, 0.0)
    bar = tqdm(total=n, unit="img", desc="val", disable=not verbose, dynamic_ncols=True)

    def read(index: int) -> tuple[Sample, Any]:  # every file read of one image
        sample = ds[index]
        return sample, sample.image()

    def skip(where: str, message: str) -> None:
        ds.problems.append(Problem(where, message))
        logger.warning("skipped %s", message)

    loaded = each_item(
        range(n), read, name=lambda i: str(ds.path(i)), report=skip, done=lambda: bar.update(1)
    )
    measured = 0
    try:
        for _, (sample, image) in loaded:
            measured += 1
            key = EmbeddingStore.key(sample.path)
            report.current = sample.path
            for m in members:
                t0 = time.perf_counter()
                encode_cached(m.engine, m.store, image, key)
                m.encode_s += time.perf_counter() - t0
                ctx = Context(m.engine, sample, m.label, settings, report.keep)
                for p in settings.protocols:
                    t0 = time.perf_counter()
                    if p in PROMPT_PROTOCOLS:
                        rows += run_prompt(p, ctx)
                    else:
                        rows += accs[(m.label, p)].add(ctx, image)
                    m.decode_s[p] += time.perf_counter() - t0
            bar.update(1)
    finally:
        bar.close()
    if n and not measured:
        raise DatasetError(f"none of the {n} images of {ds.root} could be read (see the warnings)")
    return rows, accs
