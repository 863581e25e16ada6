"""The one backend seam: every path that runs a network goes through an :class:`Engine`.

The front (:class:`~samkit.model.SAM`), segment everything
(:class:`~samkit.automatic.SamAutomaticMaskGenerator`), auto-annotation, the annotator,
validation, fine-tuning and the Ray stages take an engine made by the one entrance
(:func:`samkit.entrance.load`); whatever was set when it was made (device, dtype, ``compile``,
``decoder_batch``) therefore holds on every path. A ``SAM`` owns exactly one engine
(``SAM(...).engine``).

Implementations: :class:`TorchEngine` (over :class:`~samkit.predictor.SamPredictor`),
:class:`~samkit.backends.onnxruntime.OnnxEngine` (over the ONNX Runtime predictor) and
:class:`~samkit.backends.grabcut.GrabCutEngine`. :func:`as_engine` wraps an object that
already runs (a ``Sam``, a predictor, a ``SAM`` front, an engine); the entrance uses it.

The protocol, in data-flow order. Frames are the engine's ``geometry``'s
(:mod:`samkit.families.geometry`): "original" = the user's image pixels; "prompt frame" = the
square of side ``image_size`` the prompts and low-res logits live in.

Attributes
    ``backend`` ``"torch"`` / ``"onnxruntime"`` / ``"grabcut"``; ``geometry`` (the network's
    family's); ``image_size`` (the prompt frame's side, 1024 for SAM); ``low_res`` side of the
    decoder's logits (the geometry's); ``mask_threshold`` logit above which a pixel is in the
    mask (0.0); ``decoder_batch`` prompts per decoder pass.
Image (state is passed, not hidden)
    ``encode(image_rgb)`` (H, W, 3) uint8 RGB -> the image state (an
    :class:`~samkit.families.state.ImageState` for SAM engines; it also becomes the current
    image); ``set_image`` / ``get_state`` / ``set_state`` / ``reset_image`` /
    ``is_image_set`` / ``sizes()`` (``(input_size, original_size)``) handle the current image
    for callers that keep one; ``fork()`` a twin over the same network with its own current
    image.
Prompts
    ``decode(objects, multimask_output, decoder_batch=None, state=None)``:
    :class:`~samkit.prompts.ObjectPrompt` s in the original frame, all with equal ``key``,
    against ``state`` (default: the current image) -> low-res logits (B, C, s, s) float32 and
    scores (B, C) float32 NumPy, C = 3 with ``multimask_output`` else 1.
Post-processing
    ``upscale(low, state=None)`` low-res logits (B, 1, s, s) float32 NumPy -> masks (B, H, W)
    bool in the original frame.
Segment everything (the optional :class:`EverythingOps` capability; GrabCut lacks it and
:func:`require_everything` says so)
    ``decode_points(coords, labels, multimask_output=True, decoder_batch=None, bf16=False,
    limits=None)``: points (B, K, 2) float in the prompt frame, labels (B, K) int -> the same
    two arrays in the engine's native array type (torch tensors on the engine's device for
    torch, NumPy for ONNX Runtime); ``bf16`` asks for a bfloat16 decoder (torch only);
    ``limits`` says which logits the caller will read
    (:class:`~samkit.modeling.decoder_fast.OutputLimits`). ``upsample(low)`` (N, s, s) ->
    logits (N, H, W) of the current image, bit for bit the reference's two bilinear resizes;
    ``stability(logits, offset)`` -> (N,) float32; ``masks(logits, idx)`` -> (k, H, W) bool;
    ``iou_above(iou, t)`` -> int64 indices; ``take(x, idx)``; ``to_numpy(x)`` float32.

An engine without an image embedding (GrabCut: ``has_embedding = False``) is refused by the
embedding store's users (``samkit embed``, the Ray stages) through :func:`require_embedding`.
CPU thread policy belongs to the engine too: see :func:`samkit.device.set_cpu_threads` (the
``threads`` option). torch is imported inside the methods only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from samkit.backends.common import PredictorImages
from samkit.errors import SamkitError
from samkit.families.geometry import Geometry
from samkit.prompts import ObjectPrompt, stack_objects

if TYPE_CHECKING:
    from samkit.modeling import Sam
    from samkit.predictor import SamPredictor

__all__ = [
    "Engine",
    "EverythingEngine",
    "EverythingOps",
    "TorchEngine",
    "as_engine",
    "engine_geometry",
    "fork_engine",
    "has_everything",
    "require_embedding",
    "require_everything",
]


@runtime_checkable
class Engine(Protocol):
    """What every path needs from a backend; see the module docstring for the contract.

    ``decode`` and ``upscale`` take the image ``state`` explicitly (a value from ``encode``);
    without it they use the current image (``set_image`` / ``set_state``)."""

    backend: str
    image_size: int
    mask_threshold: float

    @property
    def low_res(self) -> int: ...
    @property
    def decoder_batch(self) -> int: ...
    @property
    def is_image_set(self) -> bool: ...
    def encode(self, image_rgb: np.ndarray) -> Any: ...
    def set_image(self, image_rgb: np.ndarray) -> None: ...
    def reset_image(self) -> None: ...
    def get_state(self) -> Any: ...
    def set_state(self, state: Any) -> None: ...
    def sizes(self) -> tuple[tuple[int, int], tuple[int, int]]: ...
    def decode(
        self,
        objects: Sequence[ObjectPrompt],
        multimask_output: bool,
        decoder_batch: int | None = None,
        state: Any = None,
    ) -> tuple[np.ndarray, np.ndarray]: ...
    def upscale(self, low_res_logits: np.ndarray, state: Any = None) -> np.ndarray: ...


@runtime_checkable
class EverythingOps(Protocol):
    """The optional capability segment everything needs: decode a grid of points and judge
    the logits in the engine's native arrays (see the module docstring). Torch and ONNX
    Runtime engines have it; GrabCut does not."""

    def decode_points(
        self,
        coords: np.ndarray,
        labels: np.ndarray,
        multimask_output: bool = True,
        decoder_batch: int | None = None,
        bf16: bool = False,
        limits: Any = None,
    ) -> tuple[Any, Any]: ...
    def upsample(self, low: Any) -> Any: ...
    def stability(self, logits: Any, offset: float) -> np.ndarray: ...
    def masks(self, logits: Any, idx: np.ndarray) -> np.ndarray: ...
    def iou_above(self, iou: Any, threshold: float) -> np.ndarray: ...
    def take(self, x: Any, idx: np.ndarray) -> Any: ...
    def to_numpy(self, x: Any) -> np.ndarray: ...


@runtime_checkable
class EverythingEngine(Engine, EverythingOps, Protocol):
    """An :class:`Engine` with the :class:`EverythingOps` capability."""


def engine_geometry(engine: Any) -> Geometry:
    """The engine's ``geometry`` (samkit's engines carry their family's); for an engine made
    elsewhere without one, SAM-1's resize-longest-and-pad at its ``image_size``."""
    geometry = getattr(engine, "geometry", None)
    if geometry is not None:
        return geometry
    from samkit.families.geometry import ResizeLongestPad

    return ResizeLongestPad(int(engine.image_size))


def fork_engine(engine: Any) -> Any:
    """``engine.fork()`` (a twin with its own current image), or the engine itself when it
    cannot fork (an engine made elsewhere)."""
    fork = getattr(engine, "fork", None)
    return fork() if callable(fork) else engine


def has_everything(engine: Any) -> bool:
    """Whether ``engine`` has the :class:`EverythingOps` capability."""
    return isinstance(engine, EverythingOps)


def require_everything(engine: Any, task: str = "segment everything") -> None:
    """Raise a clear error when ``engine`` cannot run segment everything.

    Raises:
        SamkitError: naming the engine and what to use instead.
    """
    if not has_everything(engine):
        raise SamkitError(
            f"{task} needs a SAM model (e.g. model=mobile_sam.pt, a checkpoint or an ONNX "
            f"export); the {getattr(engine, 'backend', type(engine).__name__)} engine only "
            "segments objects given by boxes, points or masks"
        )


def require_embedding(engine: Any, task: str) -> None:
    """Raise a clear error when ``engine`` has no image embedding to store or ship (GrabCut).

    Raises:
        SamkitError: naming the task and what to use instead.
    """
    if not getattr(engine, "has_embedding", True):
        raise SamkitError(
            f"{task} needs a SAM model (e.g. model=mobile_sam.pt, a checkpoint or an ONNX "
            f"export): the {getattr(engine, 'backend', type(engine).__name__)} engine has no "
            "image embedding"
        )


class TorchEngine(PredictorImages):
    """:class:`Engine` over the torch :class:`~samkit.predictor.SamPredictor`.

    ``TorchEngine(model, device=..., dtype=..., half=..., compile=..., decoder_batch=...,
    decoder_dtype=..., threads=...)``: the options are those of ``SamPredictor``; ``threads``
    sets the CPU intra-op threads once (:func:`samkit.device.set_cpu_threads`). Use
    :meth:`from_predictor` to wrap a predictor that already exists.
    """

    backend = "torch"

    def __init__(self, model: Sam, *, threads: int | None = None, **options: Any) -> None:
        from samkit.predictor import SamPredictor

        if threads is not None:
            from samkit.device import set_cpu_threads

            set_cpu_threads(threads)
        self._bind(SamPredictor(model, **options))

    @classmethod
    def from_predictor(cls, predictor: SamPredictor) -> TorchEngine:
        """An engine over an existing predictor (its device, dtype and batch are kept)."""
        engine = cls.__new__(cls)
        engine._bind(predictor)
        return engine

    def _bind(self, predictor: SamPredictor) -> None:
        self.predictor = predictor
        self.geometry = predictor.geometry
        self.image_size = int(predictor.image_size)
        self.mask_threshold = float(predictor.model.mask_threshold)

    # ----------------------------------------------------------------- attributes
    @property
    def low_res(self) -> int:
        """Side of the decoder's low-res logits (256 for a 1024 input), the geometry's."""
        return int(self.geometry.low_res)

    @property
    def decoder_batch(self) -> int:
        return int(self.predictor.decoder_batch)

    @property
    def model(self) -> Sam:
        return self.predictor.model

    @property
    def device(self) -> Any:
        """The ``torch.device`` the network runs on."""
        return self.predictor.device

    @property
    def dtype(self) -> Any:
        """The encoder's compute ``torch.dtype``."""
        return self.predictor.dtype

    # ----------------------------------------------------------------- prompts
    def decode(
        self,
        objects: Sequence[ObjectPrompt],
        multimask_output: bool,
        decoder_batch: int | None = None,
        state: Any = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Objects with equal :attr:`ObjectPrompt.key` -> low-res logits (B, C, s, s) float32 and
        scores (B, C) float32, C = 3 with ``multimask_output`` else 1, against ``state`` (default:
        the current image)."""
        import torch

        p = self.predictor
        state = p.as_state(state)
        arrays = stack_objects(objects, state.original_size, self.geometry)
        coords, labels, boxes, mask_in = (
            None if a is None else torch.as_tensor(a, device=p.device) for a in arrays
        )
        low, scores = p.decode_low_res(
            None if coords is None else coords.float(),
            None if labels is None else labels.int(),
            None if boxes is None else boxes.float(),
            None if mask_in is None else mask_in.float(),
            multimask_output,
            decoder_batch=decoder_batch,
            state=state,
        )
        return low.float().cpu().numpy(), scores.float().cpu().numpy()

    def decode_points(
        self,
        coords: np.ndarray,
        labels: np.ndarray,
        multimask_output: bool = True,
        decoder_batch: int | None = None,
        bf16: bool = False,
        limits: Any = None,
    ) -> tuple[Any, Any]:
        """Points (B, K, 2) in the input frame, labels (B, K) -> low-res logits (B, C, s, s) and
        scores (B, C), float32 torch tensors on the engine's device. ``limits``: which logits
        will be read (:class:`~samkit.modeling.decoder_fast.OutputLimits`)."""
        import torch

        p = self.predictor
        pts = torch.as_tensor(coords, device=p.device)
        lab = torch.as_tensor(labels, dtype=torch.int, device=p.device)
        dtype = torch.bfloat16 if bf16 else None
        low, iou = p.decode_low_res(
            pts,
            lab,
            None,
            None,
            multimask_output,
            decoder_batch=decoder_batch,
            dtype=dtype,
            limits=limits,
        )
        return low.float(), iou.float()

    # ----------------------------------------------------------------- post-processing
    def upscale(self, low_res_logits: np.ndarray, state: Any = None) -> np.ndarray:
        """Low-res logits (B, 1, s, s) -> masks (B, H, W) bool at the original size of
        ``state`` (default: the current image), as :meth:`SamPredictor.predict_torch` does it."""
        import torch

        from samkit.postprocess import binarize

        p = self.predictor
        state = p.as_state(state)
        x = torch.as_tensor(low_res_logits, device=p.device)
        with torch.inference_mode():
            up = self.geometry.upsample(x, state.input_size, state.original_size)
            masks = binarize(up, self.mask_threshold)
        return masks[:, 0].cpu().numpy()

    def upsample(self, low: Any) -> Any:
        """Native (or NumPy float32) low-res logits (N, s, s) -> (N, H, W) logits of the
        current image."""
        import torch

        input_size, original_size = self.sizes()
        low = torch.as_tensor(low, device=self.device)
        with torch.inference_mode():
            return self.geometry.upsample(low, input_size, original_size, exact=True)

    def stability(self, logits: Any, offset: float) -> np.ndarray:
        from samkit.postprocess import stability_score

        return stability_score(logits, self.mask_threshold, offset)

    def masks(self, logits: Any, idx: np.ndarray) -> np.ndarray:
        """``(k, H, W)`` bool masks of rows ``idx`` of the logits."""
        from samkit.postprocess import binarize

        return binarize(self.take(logits, idx), self.mask_threshold).cpu().numpy()

    def iou_above(self, iou: Any, threshold: float) -> np.ndarray:
        """Int64 indices of the IoUs ``> threshold`` (compared in the IoUs' dtype)."""
        return (iou > threshold).nonzero().flatten().cpu().numpy()

    def take(self, x: Any, idx: np.ndarray) -> Any:
        import torch

        return x[torch.from_numpy(np.asarray(idx, dtype=np.int64)).to(x.device)]

    def to_numpy(self, x: Any) -> np.ndarray:
        if isinstance(x, np.ndarray):  # already host memory (e.g. from ``decode``)
            return x.astype(np.float32, copy=False)
        return x.float().cpu().numpy()


def as_engine(model: Any, **options: Any) -> Engine:
    """The engine for ``model``, the one place where a backend is chosen from what a user passed.

    ``model``: an :class:`Engine` (returned as is); a ``SAM`` front (its ``.engine``); a
    :class:`~samkit.predictor.SamPredictor` or an ONNX Runtime ``OnnxPredictor`` (wrapped, no
    copy); a torch ``Sam`` (a :class:`TorchEngine` over it). ``options`` (``device``,
    ``dtype``, ``half``, ``compile``, ``decoder_batch`` ...) apply when a new :class:`TorchEngine` is made, and are refused
    otherwise: an existing engine keeps its settings.
    """
    from samkit.backends.onnxruntime import OnnxEngine, OnnxPredictor  # no torch here

    given = {k: v for k, v in options.items() if v not in (None, "", False)}
    front = getattr(model, "engine", None)  # the SAM front's documented attribute
    existing: Engine | None = None
    if isinstance(model, (TorchEngine, OnnxEngine, Engine)):
        existing = model
    elif isinstance(front, Engine):
        existing = front
    elif isinstance(model, OnnxPredictor):
        existing = OnnxEngine(model)
    else:  # torch objects: imported only now, so the ONNX Runtime path never loads torch
        from samkit.predictor import SamPredictor

        if isinstance(model, SamPredictor):
            existing = TorchEngine.from_predictor(model)
    if existing is not None:
        if given:
            raise SamkitError(
                f"{', '.join(sorted(given))} cannot change an existing "
                f"{type(model).__name__}'s engine; set them where it is made (e.g. SAM(...))"
            )
        return existing
    from samkit.families.base import families
    from samkit.modeling import Sam

    config = getattr(model, "config", None)
    owner = next((f for f in families() if config is not None and f.owns(config)), None)
    make = owner.make_engine if owner is not None else None
    if make is not None:  # a family with its own torch engine (SAM 2)
        options.setdefault("device", None)
        return make(model, **options)
    if not isinstance(model, Sam):
        raise SamkitError(
            "model must be a Sam, a SamPredictor, an OnnxPredictor, a SAM front or an Engine, "
            f"got {type(model).__name__}"
        )
    options.setdefault("device", None)
    return TorchEngine(model, **options)
