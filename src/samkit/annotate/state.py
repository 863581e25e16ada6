"""What one auto-annotation run shares and reports: :class:`AnnotateRun` (where labels go, the
box source, class names and COCO ids, which images may not be written) and its
:class:`AnnotateSummary`. The single-process loop and the Ray pipeline
(:mod:`samkit.cluster.annotate`) both fill them."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from samkit.annotate.writers import DatasetWriter
from samkit.polygons import PolygonMode

__all__ = ["AnnotateRun", "AnnotateSummary"]

logger = logging.getLogger("samkit")


@dataclass
class AnnotateSummary:
    """What a run did. ``images``: images found; ``annotated``: labelled in this run;
    ``objects``: objects written; ``empty``: annotated images without objects; ``skipped``:
    images already labelled (resume); ``errors``: images that failed (``failures`` says
    why); ``dropped``: detections removed (outside the image, empty or < min_area mask)."""

    images: int = 0
    annotated: int = 0
    objects: int = 0
    empty: int = 0
    skipped: int = 0
    errors: int = 0
    dropped: int = 0
    seconds: float = 0.0
    output_dir: str = ""
    formats: list[str] = field(default_factory=list)
    names: dict[int, str] = field(default_factory=dict)
    failures: list[dict[str, str]] = field(default_factory=list)
    stage_seconds: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["images_per_s"] = round(self.annotated / self.seconds, 3) if self.seconds else 0.0
        out["names"] = {str(k): v for k, v in sorted(self.names.items())}
        return out

    def __str__(self) -> str:
        stages = ", ".join(f"{k} {v:.3f}s" for k, v in self.stage_seconds.items())
        return (
            f"{self.images} images: {self.annotated} annotated ({self.objects} objects, "
            f"{self.empty} empty), {self.skipped} skipped, {self.errors} errors, "
            f"{self.dropped} detections dropped in {self.seconds:.1f}s -> {self.output_dir}"
            + (f" (per image: {stages})" if stages else "")
        )


@dataclass
class AnnotateRun:
    """One run's shared state: where labels go, the box source, the class names and COCO ids
    seen so far, the summary, and which images may not be written (label-name clashes)."""

    writer: DatasetWriter
    source: Any
    names: dict[int, str]
    coco_ids: dict[int, int]
    summary: AnnotateSummary
    polygon_mode: PolygonMode | None
    clashes: dict[str, str]
    reserved: set[Path]
    verbose: bool = True

    def refuse(self, rel: str) -> str | None:
        """Why the image at ``rel`` may not be labelled, or None."""
        if rel in self.clashes:
            return f"its label file would overwrite the one of {self.clashes[rel]}"
        if any(p in self.reserved for p in self.writer.paths(rel).values()):
            return "its label file name is reserved for the run's own files"
        return None

    def fail(self, rel: str, message: str) -> None:
        """Count and report an image that failed."""
        from tqdm.auto import tqdm

        self.summary.errors += 1
        self.summary.failures.append({"image": rel, "error": message})
        if self.verbose:
            tqdm.write(f"samkit: skipped {rel}: {message}")
        logger.debug("auto_annotate: %s: %s", rel, message)
