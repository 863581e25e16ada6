"""Detector checkpoints are checked before Ultralytics unpickles them.

Ultralytics loads a ``.pt`` with a full unpickle (``torch.load(weights_only=False)``), which
runs whatever code a crafted file names. :func:`check_detector_file` first reads the file
with PyTorch's restricted unpickler, allowing only what an Ultralytics checkpoint holds:
tensors and plain containers (PyTorch's own allowlist), plus layer classes of ``ultralytics``
and ``torch.nn`` that are *rebuilt* (an empty instance whose attributes are filled in) and
never *called*. A file that names anything else (``os.system``, ``builtins.exec``,
``subprocess``...), calls a class, or is not a ``torch.save`` zip checkpoint is refused with
a :class:`~samkit.errors.CheckpointError` before Ultralytics sees it.

A file you trust that fails the check (a model with its own layer classes) can still be used:
list it in ``SAMKIT_TRUSTED_DETECTORS`` (paths separated by ``os.pathsep``; ``*`` trusts
every file), or load it yourself (``ultralytics.YOLO(path)``) and pass the model object.
"""

from __future__ import annotations

import importlib
import os
import zipfile
from pathlib import Path
from typing import Any

from samkit.errors import CheckpointError

__all__ = ["TRUST_VARIABLE", "check_detector_file"]

TRUST_VARIABLE = "SAMKIT_TRUSTED_DETECTORS"

# Ultralytics formats that are not pickles (the suffix decides how Ultralytics reads a file).
_NOT_PICKLES = {".yaml", ".yml", ".onnx", ".engine", ".tflite", ".pb", ".mnn", ".mlpackage",
                ".mlmodel", ".aimodel", ".torchscript"}  # fmt: skip
# Prefixes of the modules whose torch.nn.Module subclasses a checkpoint may rebuild.
_LAYER_MODULES = ("ultralytics.", "torch.nn.modules.")
# Plain data classes a checkpoint may hold (calling them with any arguments only stores data).
_DATA_CLASSES = ("ultralytics.utils.IterableSimpleNamespace", "types.SimpleNamespace",
                 "pathlib.PosixPath", "pathlib.WindowsPath", "numpy.dtype", "numpy.ndarray",
                 "numpy.core.multiarray._reconstruct", "numpy._core.multiarray._reconstruct",
                 "numpy.core.multiarray.scalar", "numpy._core.multiarray.scalar")  # fmt: skip


class _Rebuilt:
    """Stands for a layer class during the check: rebuilding it is fine, calling it is not."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        raise CheckpointError("it calls a layer class with arguments instead of rebuilding it")


def _trusted(path: Path) -> bool:
    listed = [p for p in os.environ.get(TRUST_VARIABLE, "").split(os.pathsep) if p.strip()]
    if "*" in listed:
        return True
    target = path.resolve()
    return any(Path(p).expanduser().resolve() == target for p in listed)


def _resolve(name: str) -> Any:
    """The object a pickle global ``module.name`` refers to, or None when it cannot be found."""
    module, _, attr = name.rpartition(".")
    try:
        return getattr(importlib.import_module(module), attr, None)
    except Exception:  # a module that does not import is not allowed either
        return None


def _allowed(name: str) -> bool:
    if name in _DATA_CLASSES:
        return True
    if not name.startswith(_LAYER_MODULES):
        return False
    import torch

    obj = _resolve(name)
    return isinstance(obj, type) and issubclass(obj, torch.nn.Module)


def _refusal(path: Path, arg: str, why: str) -> CheckpointError:
    return CheckpointError(
        f"{arg}: {path} was not loaded: {why}. Loading it would let it run code, so samkit "
        f"only loads detector checkpoints that hold layers and tensors. If you trust this file, "
        f"add its path to {TRUST_VARIABLE} (or load it yourself with ultralytics.YOLO and pass "
        "the model)"
    )


def check_detector_file(path: str | os.PathLike[str], arg: str = "det_model") -> None:
    """Refuse (:class:`~samkit.errors.CheckpointError` naming ``arg``) a detector file that
    could run code when Ultralytics loads it; names that are not files, non-pickle formats
    (``.yaml``, ``.onnx``, ...) and files listed in ``SAMKIT_TRUSTED_DETECTORS`` pass."""
    import torch

    file = Path(path).expanduser()
    if not file.is_file() or file.suffix.lower() in _NOT_PICKLES or _trusted(file):
        return
    if not zipfile.is_zipfile(file):
        raise _refusal(file, arg, "it is not a PyTorch zip checkpoint (torch.save)")
    try:
        unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(file)
    except Exception as exc:
        raise _refusal(file, arg, f"it cannot be read as a checkpoint ({exc})") from None
    refused = sorted(name for name in unsafe if not _allowed(name))
    if refused:
        raise _refusal(file, arg, f"it refers to {', '.join(refused[:3])}")
    stand_ins = [(_Rebuilt, name) for name in unsafe if name not in _DATA_CLASSES]
    data = [(obj, name) for name in unsafe if name in _DATA_CLASSES and (obj := _resolve(name))]
    try:
        with torch.serialization.safe_globals([*stand_ins, *data]):
            torch.load(file, map_location="cpu", weights_only=True, mmap=True)
    except CheckpointError as exc:
        raise _refusal(file, arg, str(exc)) from None
    except Exception as exc:
        detail = " ".join(str(exc).split())[:300]
        raise _refusal(file, arg, f"the restricted load failed ({detail})") from None
