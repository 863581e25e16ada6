"""The array backend of the mask generator: the few steps that touch the network's arrays.

The generator works in NumPy except for three steps, which go through one of two backends
chosen once per generator by :func:`make_arrays`:

- :class:`TorchArrays` over :class:`samkit.SamPredictor` (a torch ``Sam``): decoding under
  ``torch.inference_mode`` and the **exact** upsampling of :mod:`samkit.postprocess`;
- :class:`NumpyArrays` over :class:`samkit.backends.onnxruntime.OnnxPredictor`: the decoder graph
  through ONNX Runtime and the **fast** NumPy upsampling of :mod:`samkit.postprocess`. Nothing
  here imports torch on that path.

Low-res logits are opaque to the generator ("Low": a torch tensor or a NumPy array); predicted
IoUs, stability scores, masks and indices are always NumPy.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from samkit import transforms
from samkit.errors import SamkitError

if TYPE_CHECKING:
    from samkit.backends.onnxruntime import OnnxPredictor

__all__ = ["NumpyArrays", "TorchArrays", "make_arrays"]


class TorchArrays:
    """Decode and upsample with the torch engine; ``low`` values are torch tensors."""

    is_torch = True

    def __init__(self, model: Any) -> None:
        from samkit.predictor import SamPredictor

        self.predictor = SamPredictor(model)
        self.image_size = int(self.predictor.image_size)
        self.mask_threshold = float(self.predictor.model.mask_threshold)

    def context(self) -> contextlib.AbstractContextManager[Any]:
        import torch

        return torch.inference_mode()

    def set_image(self, image: np.ndarray) -> None:
        self.predictor.set_image(image)

    def reset_image(self) -> None:
        self.predictor.reset_image()

    def sizes(self) -> tuple[tuple[int, int], tuple[int, int]]:
        """``(input_size, original_size)`` (H, W) of the current image."""
        state = self.predictor.get_image_state()
        return tuple(state.input_size), tuple(state.original_size)  # type: ignore[return-value]

    def decode(self, points: np.ndarray, crop_size: tuple[int, int], bf16: bool) -> tuple[Any, Any]:
        """Points ``(B, 2)`` in crop pixels -> low-res logits ``(3B, 256, 256)`` and IoU
        ``(3B,)`` torch tensors, point-major (the 3 masks of point 0 first)."""
        import torch

        p = self.predictor
        coords = transforms.apply_coords(points, crop_size, p.image_size)
        pts = torch.as_tensor(coords, device=p.device)[:, None, :]
        labels = torch.ones(pts.shape[:2], dtype=torch.int, device=pts.device)
        if bf16:
            with torch.autocast(p.device.type, dtype=torch.bfloat16):
                low, iou = p.decode_low_res(pts, labels, multimask_output=True)
            low, iou = low.float(), iou.float()
        else:
            low, iou = p.decode_low_res(pts, labels, multimask_output=True)
        return low.flatten(0, 1), iou.flatten(0, 1)

    def iou_above(self, iou: Any, threshold: float) -> np.ndarray:
        """Int64 indices of the IoUs ``> threshold`` (compared in the IoUs' dtype)."""
        return (iou > threshold).nonzero().flatten().cpu().numpy()

    def take(self, x: Any, idx: np.ndarray) -> Any:
        import torch

        return x[torch.from_numpy(np.asarray(idx, dtype=np.int64)).to(x.device)]

    def to_numpy(self, x: Any) -> np.ndarray:
        return x.float().cpu().numpy()

    def upsample(
        self, low: Any, input_size: tuple[int, int], original_size: tuple[int, int]
    ) -> Any:
        """Full-resolution logits for counting: **exact** (see :mod:`samkit.postprocess`)."""
        from samkit.postprocess import upsample_exact

        return upsample_exact(low, input_size, original_size, self.image_size)


class NumpyArrays:
    """Decode with ONNX Runtime and upsample with NumPy; ``low`` values are float32 arrays."""

    is_torch = False

    def __init__(self, predictor: OnnxPredictor) -> None:
        self.predictor = predictor
        self.image_size = int(predictor.image_size)
        self.mask_threshold = float(predictor.mask_threshold)

    @contextlib.contextmanager
    def context(self) -> Iterator[None]:
        """Keep the predictor's current image (it may be shared with a SAM front): whatever
        embedding it held before :meth:`generate` is restored after."""
        saved = self.predictor.get_image_state() if self.predictor.is_image_set else None
        try:
            yield
        finally:
            if saved is None:
                self.predictor.reset_image()
            else:
                self.predictor.set_image_state(saved)

    def set_image(self, image: np.ndarray) -> None:
        self.predictor.set_image(image)

    def reset_image(self) -> None:
        self.predictor.reset_image()

    def sizes(self) -> tuple[tuple[int, int], tuple[int, int]]:
        """``(input_size, original_size)`` (H, W) of the current image."""
        state = self.predictor.get_image_state()
        return state.input_size, state.original_size

    def decode(
        self, points: np.ndarray, crop_size: tuple[int, int], bf16: bool
    ) -> tuple[np.ndarray, np.ndarray]:
        """Points ``(B, 2)`` in crop pixels -> low-res logits ``(3B, 256, 256)`` float32 and IoU
        ``(3B,)`` float32, point-major."""
        coords = transforms.apply_coords(points, crop_size, self.image_size)[:, None, :]
        labels = np.ones(coords.shape[:2], dtype=np.float32)
        low, iou = self.predictor.decode_low_res(coords, labels, multimask_output=True)
        s = low.shape[-1]
        return low.reshape(-1, s, s), iou.reshape(-1).astype(np.float32)

    def iou_above(self, iou: np.ndarray, threshold: float) -> np.ndarray:
        return np.flatnonzero(iou > np.float32(threshold))

    def take(self, x: np.ndarray, idx: np.ndarray) -> np.ndarray:
        return x[np.asarray(idx, dtype=np.int64)]

    def to_numpy(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x, dtype=np.float32)

    def upsample(
        self, low: np.ndarray, input_size: tuple[int, int], original_size: tuple[int, int]
    ) -> np.ndarray:
        """Full-resolution logits for counting: **fast** (see :mod:`samkit.postprocess`)."""
        from samkit.postprocess import upsample_fast

        return upsample_fast(low, input_size, original_size, self.image_size)


def make_arrays(model: Any) -> TorchArrays | NumpyArrays:
    """The backend for ``model``: an :class:`OnnxPredictor` (or an engine / front holding
    one as ``.predictor``) runs on NumPy; anything else is taken for a torch ``Sam``."""
    from samkit.backends.onnxruntime import OnnxPredictor

    predictor = getattr(model, "predictor", model)
    if isinstance(predictor, OnnxPredictor):
        return NumpyArrays(predictor)
    engine = getattr(model, "engine", None)  # the SAM front
    if isinstance(getattr(engine, "predictor", None), OnnxPredictor):
        return NumpyArrays(engine.predictor)  # type: ignore[union-attr]
    if getattr(model, "model", None) is not None and hasattr(model, "engine"):
        model = model.model  # a torch-backed SAM front
    if not hasattr(model, "mask_threshold") or not hasattr(model, "image_encoder"):
        raise SamkitError(
            "model must be a torch Sam, an OnnxPredictor or a SAM front, got "
            f"{type(model).__name__}"
        )
    return TorchArrays(model)
