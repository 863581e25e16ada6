"""Inference backends that run exported files instead of the torch network.

:mod:`samkit.backends.onnxruntime` runs the files written by ``samkit export format=onnx``
with ONNX Runtime, NumPy and Pillow only (torch need not be installed).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from samkit.errors import SamkitError

__all__ = ["BACKENDS", "is_onnx_export", "onnx_source"]

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


def onnx_source(model: Any, backend: str | None) -> Path | None:
    """The export folder the ONNX Runtime backend should run, or None for the torch backend.

    ``backend`` None picks ONNX Runtime for an export folder / manifest and torch otherwise.
    With ``backend="onnxruntime"`` a checkpoint (path or name) is exported once into
    ``<cache>/onnx/<stem>-<bytes>-<mtime>/`` and reused; a built network is exported into a
    temporary folder.
    """
    if backend is not None and backend not in BACKENDS:
        raise SamkitError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if is_onnx_export(model):
        if backend == "torch":
            raise SamkitError(f"{model} is an ONNX export: it runs with backend='onnxruntime' only")
        path = Path(model)
        return path.parent if path.suffix.lower() == ".onnx" else path
    if backend != "onnxruntime":
        return None
    from samkit.export import export

    if isinstance(model, (str, os.PathLike)):
        from samkit.weights import cache_dir, resolve_checkpoint

        ckpt = resolve_checkpoint(model)
        stat = ckpt.stat()
        folder = cache_dir() / "onnx" / f"{ckpt.stem}-{stat.st_size}-{stat.st_mtime_ns}"
        if not (folder / "samkit_onnx.json").is_file():
            export(ckpt, format="onnx", output=folder, name=ckpt.stem)
        return folder
    folder = Path(tempfile.mkdtemp(prefix="samkit_onnx_"))
    export(model, format="onnx", output=folder)
    return folder
