"""SAM 2 / SAM 2.1 on images: configs, recognition, builders, geometry, the engine, the drop-in
``SAM2ImagePredictor`` and ``SAM2AutomaticMaskGenerator``. Imported lazily (the configs need
no torch)."""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "Sam2Config": "samkit.sam2.config",
    "SAM2ImagePredictor": "samkit.sam2.predictor",
    "build_sam2": "samkit.sam2.build",
    "build_sam2_model": "samkit.sam2.build",
    "SAM2_VARIANTS": "samkit.sam2.variants",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'samkit.sam2' has no attribute {name!r}")
