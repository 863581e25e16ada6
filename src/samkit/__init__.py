"""samkit: promptable image segmentation with the Segment Anything family.

The public API is imported lazily so that ``import samkit`` stays cheap and works without
torch installed (the ONNX Runtime backend needs only numpy, opencv and onnxruntime).
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    "SamConfig": "samkit.registry",
    "ViTConfig": "samkit.registry",
    "TinyViTConfig": "samkit.registry",
    "VARIANTS": "samkit.registry",
    "SamkitError": "samkit.errors",
    "CheckpointError": "samkit.errors",
    "DownloadError": "samkit.errors",
    "PromptError": "samkit.errors",
    "SourceError": "samkit.errors",
    "ArgumentError": "samkit.errors",
    "ArgumentTypeError": "samkit.errors",
    "DatasetError": "samkit.errors",
    "FormatError": "samkit.errors",
    "UnknownKeyError": "samkit.errors",
    "build_sam": "samkit.build",
    "sam_model_registry": "samkit.build",
    "Sam": "samkit.modeling.sam",
    "SamPredictor": "samkit.predictor",
    "SamAutomaticMaskGenerator": "samkit.automatic",
    "SAM2ImagePredictor": "samkit.sam2.predictor",
    "SAM2AutomaticMaskGenerator": "samkit.sam2.automatic",
    "build_sam2": "samkit.sam2.build",
    "SAM2VideoPredictor": "samkit.video.meta_api",
    "build_sam2_video_predictor": "samkit.video.meta_api",
    "Sam2Tracker": "samkit.video.tracker",
    "SAM": "samkit.model",
    "Predictor": "samkit.interactive",
    "Results": "samkit.results",
    "model_summary": "samkit.summary",
    "auto_annotate": "samkit.annotate",
    "val": "samkit.evaluation",
    "open_dataset": "samkit.datasets",
    "distill": "samkit.distillation.api",
    "ASSETS": "samkit.assets",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'samkit' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
