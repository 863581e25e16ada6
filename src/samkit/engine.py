"""Backends of the front: encode one image, decode batches of objects.

:class:`Engine` is the interface :class:`~samkit.model.SAM` needs; :class:`TorchEngine`
implements it over the torch :class:`~samkit.predictor.SamPredictor`, bit for bit the same
computation as ``SamPredictor.predict_torch``. torch is imported inside the methods only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from samkit.prompts import ObjectPrompt

if TYPE_CHECKING:
    from samkit.modeling import Sam

__all__ = ["Engine", "TorchEngine"]


class Engine(Protocol):
    """What the front needs from a backend: encode one image, decode batches of objects."""

    image_size: int

    @property
    def low_res(self) -> int: ...
    @property
    def is_image_set(self) -> bool: ...
    def set_image(self, image_rgb: np.ndarray) -> None: ...
    def reset_image(self) -> None: ...
    def get_state(self) -> Any: ...
    def set_state(self, state: Any) -> None: ...
    def decode(
        self, objects: Sequence[ObjectPrompt], multimask_output: bool
    ) -> tuple[np.ndarray, np.ndarray]: ...
    def upscale(self, low_res_logits: np.ndarray) -> np.ndarray: ...


class TorchEngine:
    """:class:`Engine` over the torch :class:`~samkit.predictor.SamPredictor`."""

    def __init__(self, model: Sam, **predictor_options: Any) -> None:
        """``predictor_options`` go to :class:`~samkit.predictor.SamPredictor` (``dtype``,
        ``half``, ``compile``, ``decoder_batch`` ...)."""
        from samkit.predictor import SamPredictor

        self.predictor = SamPredictor(model, **predictor_options)
        self.image_size = int(model.image_size)

    @property
    def low_res(self) -> int:
        """Side of the decoder's low-res logits (256 for a 1024 input)."""
        return self.image_size // 4

    @property
    def is_image_set(self) -> bool:
        return self.predictor.is_image_set

    def set_image(self, image_rgb: np.ndarray) -> None:
        """Encode (H, W, 3) uint8 RGB."""
        self.predictor.set_image(image_rgb, image_format="RGB")

    def reset_image(self) -> None:
        self.predictor.reset_image()

    def get_state(self) -> Any:
        return self.predictor.get_image_state()

    def set_state(self, state: Any) -> None:
        self.predictor.set_image_state(state)

    def decode(
        self, objects: Sequence[ObjectPrompt], multimask_output: bool
    ) -> tuple[np.ndarray, np.ndarray]:
        """Objects with equal :attr:`ObjectPrompt.key` -> low-res logits (B, C, s, s) float32 and
        scores (B, C) float32, C = 3 with ``multimask_output`` else 1."""
        import torch

        from samkit import transforms

        p = self.predictor
        size, orig = self.image_size, p.original_size
        first = objects[0]
        coords = labels = boxes = mask_in = None
        if first.points is not None:
            pts = np.stack([o.points for o in objects])  # type: ignore[misc]
            coords = torch.as_tensor(transforms.apply_coords(pts, orig, size), dtype=torch.float)
            labels = torch.as_tensor(np.stack([o.labels for o in objects]), dtype=torch.int)  # type: ignore[misc]
        if first.box is not None:
            b = np.stack([o.box for o in objects])  # type: ignore[misc]
            boxes = torch.as_tensor(transforms.apply_boxes(b, orig, size), dtype=torch.float)
        if first.mask_logits is not None or first.mask is not None:
            logits = [
                o.mask_logits
                if o.mask_logits is not None
                else transforms.mask_to_logits_prompt(o.mask, orig, size)  # type: ignore[arg-type]
                for o in objects
            ]
            mask_in = torch.as_tensor(np.stack(logits), dtype=torch.float)
        dev = p.device
        low, scores = p.decode_low_res(
            None if coords is None else coords.to(dev),
            None if labels is None else labels.to(dev),
            None if boxes is None else boxes.to(dev),
            None if mask_in is None else mask_in.to(dev),
            multimask_output,
        )
        return low.float().cpu().numpy(), scores.float().cpu().numpy()

    def upscale(self, low_res_logits: np.ndarray) -> np.ndarray:
        """Low-res logits (B, 1, s, s) -> masks (B, H, W) bool at the original size, exactly as
        :meth:`SamPredictor.predict_torch` does it."""
        import torch

        from samkit.postprocess import binarize, upsample_fast

        p = self.predictor
        x = torch.as_tensor(low_res_logits, device=p.device)
        with torch.inference_mode():
            up = upsample_fast(x, p.input_size, p.original_size, self.image_size)
            masks = binarize(up, p.model.mask_threshold)
        return masks[:, 0].cpu().numpy()
