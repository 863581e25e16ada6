"""Segment everything (automatic mask generation): grid prompts, filters, crops, NMS."""

from samkit.amg.generator import SamAutomaticMaskGenerator
from samkit.amg.nms import batched_nms, batched_nms_numpy, box_area, nms
from samkit.amg.params import ULTRALYTICS_ARGS, everything_params

__all__ = [
    "ULTRALYTICS_ARGS",
    "SamAutomaticMaskGenerator",
    "batched_nms",
    "batched_nms_numpy",
    "box_area",
    "everything_params",
    "nms",
]
