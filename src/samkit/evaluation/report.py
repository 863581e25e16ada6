"""Reports of a val run: the terminal table, ``metrics.json``, ``instances.csv`` and plots in a
new run folder (``runs/val``, ``runs/val2``, ... as Ultralytics numbers them; an existing folder
is never written into)."""

from __future__ import annotations

import csv
import heapq
import io
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from samkit.evaluation.metrics import InstanceResult, click_summary, miou_summary
from samkit.evaluation.protocols import PROMPT_PROTOCOLS
from samkit.evaluation.results import ValResults, format_table
from samkit.io_utils import atomic_write_text, increment_path

__all__ = ["Report", "format_table"]


class Report:
    """Collects the worst instances for the gallery while the loop runs, then summarises and
    writes everything (:meth:`finish`)."""

    def __init__(self, settings: Any, gallery: int = 16) -> None:
        self.settings = settings
        self.gallery = int(gallery)
        self.current: Path | None = None
        self._worst: dict[tuple[str, str], list[tuple[float, int, dict[str, Any]]]] = {}
        self._n = 0

    def keep(self, row: InstanceResult, pred: np.ndarray, gt: np.ndarray) -> None:
        """Offer one instance to the gallery; kept (as a crop around prediction and truth)
        when among the worst ``gallery`` so far."""
        if self.gallery <= 0:
            return
        heap = self._worst.setdefault((row.model, row.protocol), [])
        if len(heap) >= self.gallery and -row.iou <= heap[0][0]:
            return
        self._n += 1
        item = (-row.iou, self._n, {"row": row, "path": self.current, **_crop_box(pred, gt)})
        if len(heap) < self.gallery:
            heapq.heappush(heap, item)
        else:
            heapq.heapreplace(heap, item)

    def summarise(self, members: Any, rows: list[InstanceResult], accs: Any) -> dict[str, Any]:
        st = self.settings
        models: dict[str, dict[str, Any]] = {}
        for m in members:
            per: dict[str, Any] = {}
            for p in st.protocols:
                sub = [r for r in rows if r.model == m.label and r.protocol == p]
                if p == "clicks":
                    per[p] = click_summary(sub, st.averaging, st.max_clicks)
                elif p in PROMPT_PROTOCOLS:
                    per[p] = miou_summary(sub, st.averaging)
                else:
                    per[p] = accs[(m.label, p)].summary(sub)
            models[m.label] = per
        return models

    def finish(self, members: Any, ds: Any, rows: list[InstanceResult], accs: Any, seconds: float,
               *, save: bool, project: Path, name: str, plots: bool, verbose: bool) -> Any:  # fmt: skip
        models = self.summarise(members, rows, accs)
        speed = {m.label: _speed(m, rows, seconds) for m in members}
        dataset = {"format": ds.format, "root": str(ds.root), "images": len(ds),
                   "annotations": ds.num_annotations, "crowd_skipped": ds.crowd,
                   "below_min_area": ds.below_min_area,
                   "problems": [{"file": p.file, "message": p.message} for p in ds.problems]}  # fmt: skip
        res = ValResults(next(iter(models.values())), models, self.settings.describe(), rows,
                         dataset, speed)  # fmt: skip
        if verbose:
            print(res.table())
        if save:
            res.save_dir = increment_path(project, name)
            self.write(res)
            if plots:
                from samkit.evaluation.plots import write_plots

                write_plots(res, self._gallery_items())
            if verbose:
                print(f"results saved to {res.save_dir}")
        return res

    def _gallery_items(self) -> dict[tuple[str, str], list[dict[str, Any]]]:
        return {k: [it[2] for it in sorted(v, key=lambda t: (t[0], t[1]), reverse=True)]
                for k, v in self._worst.items()}  # fmt: skip

    def write(self, res: Any) -> None:
        """``metrics.json`` (every number, the protocol, dataset counts, speed) and
        ``instances.csv`` (one row per model, protocol and instance)."""
        out = res.save_dir
        doc = {"metrics": res.models, "protocol": res.settings, "dataset": res.dataset,
               "speed": res.speed}  # fmt: skip
        atomic_write_text(out / "metrics.json", json.dumps(_clean(doc), indent=2) + "\n")
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["model", "protocol", "image", "instance_id", "class", "area", "size", "iou",
                    "score", "clicks", "noc85", "noc90", "ious", "prompt"])  # fmt: skip
        for r in res.instances:
            w.writerow([r.model, r.protocol, r.image, r.instance_id, r.category, r.area, r.size,
                        f"{r.iou:.6f}", "" if math.isnan(r.score) else f"{r.score:.6f}",
                        r.clicks or "", r.noc.get("85", ""), r.noc.get("90", ""),
                        " ".join(f"{v:.4f}" for v in r.ious), r.prompt])  # fmt: skip
        atomic_write_text(out / "instances.csv", buf.getvalue())


def _crop_box(pred: np.ndarray, gt: np.ndarray) -> dict[str, Any]:
    """``box`` (y0, y1, x0, x1) around prediction and truth with a margin, and both masks
    cropped to it (``pred``, ``gt``), for the overlay gallery."""
    ys, xs = np.nonzero(gt | pred)
    h, w = gt.shape
    pad = max(8, int(0.15 * max(xs.max() - xs.min(), ys.max() - ys.min())))
    y0, y1 = max(0, int(ys.min()) - pad), min(h, int(ys.max()) + pad + 1)
    x0, x1 = max(0, int(xs.min()) - pad), min(w, int(xs.max()) + pad + 1)
    return {
        "box": (y0, y1, x0, x1),
        "pred": pred[y0:y1, x0:x1].copy(),
        "gt": gt[y0:y1, x0:x1].copy(),
    }


def _speed(member: Any, rows: list[InstanceResult], seconds: float) -> dict[str, Any]:
    out: dict[str, Any] = {
        "encode_s": member.encode_s,
        "encoder_passes": member.store.misses - member.start[1],
        "cache_hits": member.store.hits - member.start[0],
        "total_s": seconds,
    }
    for p, s in member.decode_s.items():
        n = sum(1 for r in rows if r.model == member.label and r.protocol == p)
        out[f"{p}_s"] = s
        out[f"{p}_instances_per_s"] = n / s if s > 0 else float("nan")
    return out


def _clean(value: Any) -> Any:
    """JSON-ready: NaN -> None, numpy scalars -> Python."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return None if math.isnan(float(value)) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return value
