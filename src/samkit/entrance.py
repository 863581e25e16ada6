"""The one entrance: what a user passes as a model becomes a configured engine.

Every path that turns "a model" into something runnable calls :func:`load`: the ``SAM`` front,
auto-annotation, validation, fine-tuning, distillation, the annotator, export, embeddings and
the Ray stages. It takes

- a model name or checkpoint path (``"mobile_sam.pt"``, ``"sam_b"``, a fine-tuned file): the
  network is recognised by its family (:mod:`samkit.families`) and built;
- an ONNX export folder (or its ``samkit_onnx.json``), or any model with
  ``backend="onnxruntime"`` (exported once into the cache): the ONNX Runtime engine;
- ``"grabcut"``: the weights-free GrabCut engine;
- a built network, a predictor, an engine, a ``SAM`` front or a :class:`Loaded`.

**Device rule** (one for every path): ``device=""`` (or ``"auto"``) picks CUDA > MPS > CPU;
``None`` does the same for a network read from disk and keeps a given network where it is;
anything else ("cpu", "cuda:1", "mps", "0") is that device.

**Precision** (one set): :class:`Precision` (``half``, ``dtype``, ``compile``,
``decoder_batch``, ``threads``) is applied where a new engine is made; an existing engine or
front keeps its own, and passing settings for one is an error.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from samkit.backends import BACKENDS, is_onnx_export
from samkit.engine import Engine, TorchEngine, as_engine
from samkit.errors import SamkitError

if TYPE_CHECKING:
    from samkit.modeling import Sam

__all__ = ["Loaded", "Precision", "load", "load_network", "onnx_folder"]


@dataclass(frozen=True)
class Precision:
    """The precision and speed settings of an engine (see :class:`samkit.SAM`)."""

    half: bool = False
    dtype: str | None = None
    compile: bool | str = False
    decoder_batch: int | None = None
    threads: int | None = None

    def as_dict(self) -> dict[str, Any]:
        """The settings as keyword arguments (``TorchEngine(model, **settings)``)."""
        return asdict(self)

    def given(self) -> dict[str, Any]:
        """Only the settings that differ from the defaults."""
        return {k: v for k, v in asdict(self).items() if v not in (None, False)}

    @property
    def encoder_settings(self) -> tuple[tuple[str, Any], ...]:
        """What changes an image embedding (the encoder's dtype), for cache keys."""
        return (("half", self.half), ("dtype", self.dtype))


@dataclass
class Loaded:
    """A configured engine and where it came from.

    engine: the :class:`~samkit.engine.Engine`. model: the torch network (None for ONNX
    Runtime and GrabCut). checkpoint: the file, export folder or ``"grabcut"`` it was read
    from (None for a network given in memory). onnx_folder: the export folder run by ONNX
    Runtime, if any. precision: the settings the engine was made with.
    """

    engine: Engine
    model: Sam | None = None
    checkpoint: str | None = None
    onnx_folder: Path | None = None
    precision: Precision = field(default_factory=Precision)

    @property
    def grabcut(self) -> bool:
        return self.engine.backend == "grabcut"

    def require_network(self, task: str) -> Sam:
        """The torch network, or a clear error naming ``task``.

        Raises:
            SamkitError: the model runs without a torch network (ONNX Runtime, GrabCut).
        """
        if self.model is None:
            runs = (
                "GrabCut, which has none"
                if self.grabcut
                else f"the ONNX export {self.onnx_folder or self.checkpoint}"
            )
            raise SamkitError(
                f"{task} needs the torch network; this model runs {runs} (load a checkpoint "
                "instead)"
            )
        return self.model


def load(
    model: Any,
    *,
    device: str | None = None,
    backend: str | None = None,
    precision: Precision | None = None,
) -> Loaded:
    """``model`` (see the module docstring) -> a :class:`Loaded` engine.

    Raises:
        SamkitError: an unknown model, a bad device or backend, or settings given for an
            engine that already exists.
    """
    settings = precision or Precision()
    if isinstance(model, Loaded):
        _refuse_settings(model, settings, backend)
        return model
    existing = _existing(model, settings, backend, device)
    if existing is not None:
        return existing
    from samkit.backends.grabcut import GrabCutEngine, is_grabcut

    if is_grabcut(model):
        return Loaded(GrabCutEngine(), checkpoint="grabcut", precision=settings)
    folder = onnx_folder(model, backend)
    if folder is not None:
        return _onnx(folder, settings)
    return _torch(model, device, settings)


def load_network(model: Any, task: str, device: str | None = None) -> Sam:
    """The torch network of ``model`` (a name or checkpoint path, a ``Sam``, or a front /
    predictor / engine / :class:`Loaded` holding one), without making an engine: training,
    distillation and export take the network itself. ``device`` as in :func:`load` (None:
    where it is; a file is read to the CPU).

    Raises:
        SamkitError: ``model`` runs without a torch network (an ONNX export, GrabCut), naming
            ``task``; or it is not a model at all.
    """
    from samkit.backends.grabcut import is_grabcut

    if is_grabcut(model) or is_onnx_export(model):
        runs = "GrabCut, which has none" if is_grabcut(model) else f"the ONNX export {model}"
        raise SamkitError(
            f"{task} needs the torch network; {runs} (give a checkpoint or model name instead)"
        )
    if isinstance(model, (str, os.PathLike)):
        from samkit.build import build_sam
        from samkit.weights import resolve_checkpoint

        net: Sam = build_sam(resolve_checkpoint(model))
    elif is_network(model):
        net = model
    else:
        inner: Any = getattr(model, "model", None)
        if not is_network(inner):
            raise SamkitError(
                f"{task}: model must be a checkpoint path, a model name, a samkit Sam network "
                f"or an object holding one in .model (SAM, SamPredictor); got "
                f"{type(model).__name__}"
            )
        net = inner
    if device is not None:
        from samkit.device import select_device

        net = net.to(select_device(device))
    return net


def _existing(
    model: Any, settings: Precision, backend: str | None, device: str | None
) -> Loaded | None:
    """A front, engine or predictor given as is, or None for anything that must be built."""
    front_engine = getattr(model, "engine", None)
    if isinstance(front_engine, Engine) and not isinstance(model, Engine):
        _refuse_settings(model, settings, backend)
        return Loaded(
            front_engine,
            model=getattr(model, "model", None),
            checkpoint=getattr(model, "checkpoint", None),
            onnx_folder=getattr(model, "onnx_folder", None),
            precision=getattr(model, "precision", None) or Precision(),
        )
    if isinstance(model, (str, os.PathLike)) or is_network(model):
        return None
    _refuse_settings(model, settings, backend)
    engine = as_engine(model)
    return Loaded(engine, model=getattr(engine, "model", None))


def is_network(model: Any) -> bool:
    """Whether ``model`` is a torch network samkit runs: a ``Sam``, or a network built by a
    registered family (its ``config`` owned by one, e.g. SAM 2's ``Sam2``)."""
    if isinstance(model, (str, os.PathLike)) or not hasattr(model, "image_encoder"):
        return False
    from samkit.modeling import Sam

    if isinstance(model, Sam):
        return True
    config = getattr(model, "config", None)
    if config is None:
        return False
    from samkit.families import families

    return any(f.owns(config) for f in families())


def _refuse_settings(model: Any, settings: Precision, backend: str | None) -> None:
    given = sorted(settings.given()) + (["backend"] if backend else [])
    if given:
        raise SamkitError(
            f"{', '.join(given)} cannot change an existing {type(model).__name__}'s engine; "
            "set them where it is made (e.g. SAM(...))"
        )


def _onnx(folder: Path, settings: Precision) -> Loaded:
    from samkit.backends.onnxruntime import OnnxEngine, OnnxPredictor

    predictor = OnnxPredictor(folder, threads=settings.threads)
    engine = OnnxEngine(predictor, decoder_batch=settings.decoder_batch)
    return Loaded(engine, checkpoint=str(folder), onnx_folder=folder, precision=settings)


def _torch(model: Any, device: str | None, settings: Precision) -> Loaded:
    from samkit.device import select_device

    if isinstance(model, (str, os.PathLike)):
        from samkit.build import build_sam
        from samkit.weights import resolve_checkpoint

        dev = select_device(device)  # a bad device fails before any weights are read
        checkpoint: str | None = str(resolve_checkpoint(model))
        net = build_sam(checkpoint).to(dev).eval()
    elif is_network(model):
        checkpoint = None
        net = model if device is None else model.to(select_device(device))
        net = net.eval()
    else:
        raise SamkitError(
            "model must be a model name, a checkpoint or ONNX export path, 'grabcut', a Sam "
            f"network, a predictor, an engine or a SAM front; got {type(model).__name__}"
        )
    from samkit.families import family_of

    factory = family_of(net).make_engine or TorchEngine  # a family's own engine, if any
    engine = factory(net, **settings.as_dict())
    return Loaded(engine, model=net, checkpoint=checkpoint, precision=settings)


def onnx_folder(model: Any, backend: str | None) -> Path | None:
    """The export folder the ONNX Runtime backend should run, or None for the torch backend.

    ``backend`` None picks ONNX Runtime for an export folder / manifest and torch otherwise.
    A checkpoint with ``backend="onnxruntime"`` must be exported first
    (:func:`samkit.export.onnx_export_for`, which the ``SAM`` front calls for you).
    """
    if backend is not None and backend not in BACKENDS:
        raise SamkitError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if is_onnx_export(model):
        if backend == "torch":
            raise SamkitError(f"{model} is an ONNX export: it runs with backend='onnxruntime' only")
        path = Path(model)
        return path.parent if path.suffix.lower() == ".onnx" else path
    if backend == "onnxruntime":
        raise SamkitError(
            f"backend='onnxruntime' runs an ONNX export folder; {model!r} is not one (export it "
            "with samkit.export.onnx_export_for, or let SAM(..., backend='onnxruntime') do it)"
        )
    return None
