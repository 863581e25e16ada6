"""Auto-annotation: detector boxes -> SAM masks -> YOLO-seg, COCO and LabelMe datasets.

``auto_annotate(data, det_model=...)`` walks a folder of any size with one encoder pass per
image, writes every label file atomically, resumes where a previous run stopped, and keeps
each class with its own box whatever gets filtered.
"""

from __future__ import annotations

from samkit.annotate.detectors import (
    BoxSource,
    CallableDetector,
    CocoBoxes,
    Detections,
    UltralyticsDetector,
    YoloBoxLabels,
    make_box_source,
)
from samkit.annotate.run import auto_annotate
from samkit.annotate.segment import filter_boxes, segment_boxes
from samkit.annotate.state import AnnotateSummary
from samkit.annotate.writers import FORMATS, DatasetWriter

__all__ = [
    "FORMATS",
    "AnnotateSummary",
    "BoxSource",
    "CallableDetector",
    "CocoBoxes",
    "DatasetWriter",
    "Detections",
    "UltralyticsDetector",
    "YoloBoxLabels",
    "auto_annotate",
    "filter_boxes",
    "make_box_source",
    "segment_boxes",
]
