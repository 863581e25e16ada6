"""Segment everything: :class:`SamAutomaticMaskGenerator` (a drop-in for Meta's) and the
Ultralytics argument names it also accepts. The implementation lives in :mod:`samkit.amg`."""

from samkit.amg.generator import SamAutomaticMaskGenerator
from samkit.amg.params import GENERATOR_PARAMS, ULTRALYTICS_ARGS, everything_params

__all__ = ["GENERATOR_PARAMS", "ULTRALYTICS_ARGS", "SamAutomaticMaskGenerator", "everything_params"]
