"""What the predictor-backed engines share: the image half of the
:class:`~samkit.engine.Engine` protocol, delegated to a Meta-style predictor (``set_image``,
``reset_image``, ``get_image_state``, ``set_image_state``, ``is_image_set``). Imports neither
torch nor onnxruntime."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

__all__ = ["PredictorImages"]


class PredictorImages:
    """Image methods of an engine over ``self.predictor`` (set by the subclass)."""

    predictor: Any

    def fork(self) -> Any:
        """A twin engine over the same network (or sessions) and settings with its own current
        image, so two threads can each hold an image."""
        twin = copy.copy(self)
        twin.predictor = copy.copy(self.predictor)
        twin.predictor.reset_image()
        return twin

    @property
    def is_image_set(self) -> bool:
        return bool(self.predictor.is_image_set)

    def encode(self, image_rgb: np.ndarray) -> Any:
        """Encode (H, W, 3) uint8 RGB; it becomes the current image. Returns its state."""
        self.predictor.set_image(image_rgb, image_format="RGB")
        return self.predictor.get_image_state()

    def set_image(self, image_rgb: np.ndarray) -> None:
        """Encode (H, W, 3) uint8 RGB; it becomes the current image."""
        self.predictor.set_image(image_rgb, image_format="RGB")

    def reset_image(self) -> None:
        self.predictor.reset_image()

    def get_state(self) -> Any:
        """The current image's state (embedding and sizes)."""
        return self.predictor.get_image_state()

    def set_state(self, state: Any) -> None:
        """Make a state from :meth:`get_state` (or :meth:`encode`) current, no encoder pass."""
        self.predictor.set_image_state(state)

    def sizes(self) -> tuple[tuple[int, int], tuple[int, int]]:
        """``(input_size, original_size)`` (H, W) of the current image."""
        state = self.predictor.get_image_state()
        inp, orig = state.input_size, state.original_size
        return (int(inp[0]), int(inp[1])), (int(orig[0]), int(orig[1]))
