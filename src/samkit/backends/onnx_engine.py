"""The :class:`~samkit.engine.Engine` over ONNX Runtime: :class:`OnnxEngine` wraps an
:class:`~samkit.backends.onnxruntime.OnnxPredictor`. Native arrays are NumPy float32; nothing
here imports torch."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from samkit.backends.common import PredictorImages
from samkit.errors import SamkitError
from samkit.prompts import ObjectPrompt, stack_objects

# samkit.backends.onnxruntime.OnnxPredictor (not imported: that module imports this one)
OnnxPredictor = Any

__all__ = ["OnnxEngine"]


class OnnxEngine(PredictorImages):
    """:class:`~samkit.engine.Engine` over :class:`OnnxPredictor`.

    decoder_batch: prompts per decoder-graph run (default 64; bounds memory).
    """

    backend = "onnxruntime"

    def __init__(self, predictor: OnnxPredictor, decoder_batch: int | None = None) -> None:
        if decoder_batch is not None and (int(decoder_batch) != decoder_batch or decoder_batch < 1):
            raise SamkitError(f"decoder_batch must be a positive int, got {decoder_batch!r}")
        self.predictor = predictor
        self.geometry = predictor.geometry
        self.image_size = int(predictor.image_size)
        self.mask_threshold = float(predictor.mask_threshold)
        self._decoder_batch = int(decoder_batch or 64)

    @property
    def low_res(self) -> int:
        return int(self.predictor.low_res)

    @property
    def decoder_batch(self) -> int:
        return self._decoder_batch

    # ----------------------------------------------------------------- prompts
    def _chunks(
        self, arrays: Sequence[np.ndarray | None], batch: int | None
    ) -> list[list[np.ndarray | None]]:
        total = next((len(a) for a in arrays if a is not None), 1)
        step = self._decoder_batch if batch is None else int(batch)
        if step < 1:
            raise SamkitError(f"decoder_batch must be >= 1, got {batch}")
        return [
            [None if a is None else a[i : i + step] for a in arrays] for i in range(0, total, step)
        ]

    def _decode_low_res(
        self,
        arrays: Sequence[np.ndarray | None],
        multimask: bool,
        batch: int | None,
        state: Any = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        outs = [
            self.predictor.decode_low_res(c, lab, b, m, multimask, state=state)
            for c, lab, b, m in self._chunks(arrays, batch)
        ]
        low = np.concatenate([o[0] for o in outs]) if len(outs) > 1 else outs[0][0]
        scores = np.concatenate([o[1] for o in outs]) if len(outs) > 1 else outs[0][1]
        return low, scores

    def decode(
        self,
        objects: Sequence[ObjectPrompt],
        multimask_output: bool,
        decoder_batch: int | None = None,
        state: Any = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Objects with equal :attr:`ObjectPrompt.key` -> low-res logits (B, C, s, s) float32 and
        scores (B, C) float32, C = 3 with ``multimask_output`` else 1, against ``state``
        (default: the current image)."""
        p = self.predictor
        image = p.get_image_state() if state is None else p.as_state(state)
        arrays = stack_objects(objects, image.original_size, self.geometry)
        return self._decode_low_res(arrays, multimask_output, decoder_batch, image)

    def decode_points(
        self,
        coords: np.ndarray,
        labels: np.ndarray,
        multimask_output: bool = True,
        decoder_batch: int | None = None,
        bf16: bool = False,
        limits: Any = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Points (B, K, 2) in the input frame, labels (B, K) -> low-res logits (B, C, s, s) and
        scores (B, C) float32. ``limits`` is accepted and ignored: the graph computes every
        logit."""
        del limits
        if bf16:
            raise SamkitError("bf16 decoding needs the torch backend")
        arrays = (coords, np.asarray(labels, dtype=np.float32), None, None)
        low, iou = self._decode_low_res(arrays, multimask_output, decoder_batch)
        return low, iou.astype(np.float32)

    # ----------------------------------------------------------------- post-processing
    def upscale(self, low_res_logits: np.ndarray, state: Any = None) -> np.ndarray:
        """Low-res logits (B, 1, s, s) -> masks (B, H, W) bool at the original size of
        ``state`` (default: the current image)."""
        from samkit.postprocess import binarize

        if state is None:
            return self.predictor.upscale(low_res_logits)[:, 0]
        image = self.predictor.as_state(state)
        low = np.asarray(low_res_logits, dtype=np.float32)
        logits = self.geometry.upsample(low, image.input_size, image.original_size)
        return binarize(logits, self.mask_threshold)[:, 0]

    def upsample(self, low: np.ndarray) -> np.ndarray:
        """Low-res logits (N, s, s) -> float32 logits (N, H, W) of the current image
        (**fast** contract of :mod:`samkit.postprocess`)."""
        input_size, original_size = self.sizes()
        return self.geometry.upsample(low, input_size, original_size)

    def stability(self, logits: np.ndarray, offset: float) -> np.ndarray:
        """``(N,)`` float32 IoU of ``logits > t + offset`` and ``> t - offset`` per mask."""
        from samkit.postprocess import stability_score

        return stability_score(logits, self.mask_threshold, offset)

    def masks(self, logits: np.ndarray, idx: np.ndarray) -> np.ndarray:
        from samkit.postprocess import binarize

        return binarize(logits[np.asarray(idx, dtype=np.int64)], self.mask_threshold)

    def iou_above(self, iou: np.ndarray, threshold: float) -> np.ndarray:
        return np.flatnonzero(iou > np.float32(threshold))

    def take(self, x: np.ndarray, idx: np.ndarray) -> np.ndarray:
        return x[np.asarray(idx, dtype=np.int64)]

    def to_numpy(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x, dtype=np.float32)
