"""SAM 2 / SAM 2.1 on images: configs, recognition, builders, transforms, the drop-in
``SAM2ImagePredictor`` and ``SAM2AutomaticMaskGenerator``."""

from samkit.sam2.predictor import SAM2ImagePredictor

__all__ = ["SAM2ImagePredictor"]
