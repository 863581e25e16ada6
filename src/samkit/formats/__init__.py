"""Dataset label formats: YOLO-seg / YOLO boxes, COCO instances JSON, LabelMe JSON.

Every writer goes through :mod:`samkit.io_utils`' atomic writes, so a label file is either the
old one or the complete new one, never half written.
"""

from __future__ import annotations

from samkit.formats.coco import CocoWriter, read_coco_boxes
from samkit.formats.labelme import labelme_record, read_labelme, write_labelme
from samkit.formats.yolo import (
    format_yolo_lines,
    read_yolo_boxes,
    read_yolo_seg,
    write_data_yaml,
    write_yolo,
)
from samkit.io_utils import atomic_write_bytes, atomic_write_text

__all__ = [
    "CocoWriter",
    "atomic_write_bytes",
    "atomic_write_text",
    "format_yolo_lines",
    "labelme_record",
    "read_coco_boxes",
    "read_labelme",
    "read_yolo_boxes",
    "read_yolo_seg",
    "write_data_yaml",
    "write_labelme",
    "write_yolo",
]
