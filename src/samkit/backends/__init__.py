"""Inference backends that run exported files instead of the torch network.

:mod:`samkit.backends.onnxruntime` runs the files written by ``samkit export format=onnx``
with ONNX Runtime, NumPy and Pillow only (torch need not be installed).
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["BACKENDS", "is_onnx_export"]

BACKENDS = ("torch", "onnxruntime")
"""Names accepted by ``SAM(..., backend=...)``."""


def is_onnx_export(source: object) -> bool:
    """True when ``source`` names an ONNX export: a folder holding ``samkit_onnx.json``, that
    manifest itself, or an ``.onnx`` file."""
    if not isinstance(source, (str, os.PathLike)):
        return False
    path = Path(source)
    if path.is_dir():
        return (path / "samkit_onnx.json").is_file()
    return path.name == "samkit_onnx.json" or path.suffix.lower() == ".onnx"
