"""The settings of a val run: every choice the papers differ on, with its default."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["ValSettings"]


@dataclass(frozen=True)
class ValSettings:
    """Protocol settings (stated in full in ``metrics.json``).

    protocols: names from :data:`samkit.evaluation.protocols.PROTOCOLS`.
    select: mask selection for every prompt protocol, ``"single"`` / ``"best"`` / ``"first"``
        / ``"oracle"``; None = each protocol's default (box single, points best).
    box_jitter: std of the Gaussian noise added to each box coordinate, as a fraction of the
        box side (0 = exact tight boxes; SAM's training used 0.1).
    min_area: ground-truth instances with fewer pixels are left out.
    averaging: ``"instance"`` (mean over instances) or ``"image"`` (mean of per-image means).
    max_clicks: clicks per instance in ``clicks`` (default 20, as RITM / SimpleClick).
    early_stop: stop clicking an instance at IoU >= 0.90 after >= 5 clicks.
    seed: seeds every random choice (box jitter).
    batch: instances decoded together.
    detections: the ``detections`` protocol's box source (detector checkpoint, COCO results /
        instances JSON, YOLO box folder, callable).
    teacher: the ``teacher`` protocol's teacher model (checkpoint, SAM or engine).
    everything: segment-everything settings (``points_per_side`` ...), Meta's names.
    gallery: worst instances per model and protocol in the overlay gallery.
    """

    protocols: tuple[str, ...] = ("box", "point")
    select: str | None = None
    box_jitter: float = 0.0
    min_area: int = 0
    averaging: str = "instance"
    max_clicks: int = 20
    early_stop: bool = True
    seed: int = 0
    batch: int = 16
    detections: Any = None
    teacher: Any = None
    everything: dict[str, Any] = field(default_factory=dict)
    gallery: int = 16

    def describe(self) -> dict[str, Any]:
        """JSON-ready settings and the text of every protocol run."""
        from samkit.evaluation.protocols import DEFAULT_SELECT, PROTOCOLS

        out: dict[str, Any] = {
            "protocols": {p: PROTOCOLS[p] for p in self.protocols},
            "select": {
                p: self.select or DEFAULT_SELECT[p] for p in self.protocols if p in DEFAULT_SELECT
            },
            "box_jitter": self.box_jitter,
            "min_area": self.min_area,
            "averaging": self.averaging,
            "max_clicks": self.max_clicks,
            "early_stop": self.early_stop,
            "seed": self.seed,
            "size_buckets": {
                "small": "area < 32^2",
                "medium": "32^2 <= area < 96^2",
                "large": "area >= 96^2",
            },
            "iou": "at the original image resolution, |P & G| / |P | G|",
        }
        if "everything" in self.protocols:
            out["everything"] = dict(self.everything)
        if self.detections is not None:
            out["detections"] = str(self.detections)
        if self.teacher is not None:
            out["teacher"] = str(getattr(self.teacher, "checkpoint", None) or self.teacher)
        return out
