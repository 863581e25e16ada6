"""What a val run measured (:class:`ValResults`) and its terminal table (:func:`format_table`):
one block per protocol, a row per model, the numbers overall and by size bucket."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from samkit.evaluation.metrics import InstanceResult

__all__ = ["ValResults", "format_table"]

_HEAD = {"box": ("miou",), "point": ("miou",), "center": ("miou",),
         "clicks": ("miou@1", "miou@3", "miou@5", "noc@85", "noc@90", "reach@85", "reach@90"),
         "everything": ("recall@0.5", "recall@0.75", "miou", "masks_per_image"),
         "detections": ("ap", "ap50", "ap75", "ap_small", "ap_medium", "ap_large"),
         "teacher": ("miou", "box_miou", "point_miou")}  # fmt: skip


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return "-" if math.isnan(v) else (f"{v:.2f}" if abs(v) >= 2 else f"{v:.4f}")
    return str(v)


def format_table(models: dict[str, dict[str, dict[str, Any]]]) -> str:
    """One block per protocol: a row per model, the protocol's numbers overall and the mIoU
    by size bucket, with instance counts."""
    lines: list[str] = []
    protocols = list(dict.fromkeys(p for m in models.values() for p in m))
    width = max([len(m) for m in models] + [5])
    for p in protocols:
        cols = list(_HEAD.get(p, ("miou",)))
        buckets = p != "detections"
        head = cols + (["small", "medium", "large"] if buckets else []) + ["n"]
        lines.append(f"{p}:")
        cw = [max(9, len(h) + 2) for h in head]
        lines.append(
            "  "
            + "model".ljust(width)
            + "".join(f"{h:>{c}}" for h, c in zip(head, cw, strict=True))
        )
        for label, per in models.items():
            m = per.get(p)
            if m is None:
                continue
            vals = [m.get(c, float("nan")) for c in cols]
            if buckets:
                vals += [m["by_size"][b]["miou"] for b in ("small", "medium", "large")]
            vals.append(m.get("n", 0))
            cells = "".join(f"{_fmt(v):>{c}}" for v, c in zip(vals, cw, strict=True))
            lines.append("  " + label.ljust(width) + cells)
        if buckets:
            first = next(iter(models.values())).get(p, {})
            counts = ", ".join(f"{b} {first.get('by_size', {}).get(b, {}).get('n', 0)}"
                               for b in ("small", "medium", "large"))  # fmt: skip
            lines.append(f"  instances by size: {counts}")
    return "\n".join(lines)


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
        return format_table(self.models)
