"""The current-image slot that the torch and ONNX Runtime predictors share: one encoded
image's state (features plus sizes) and the accessors Meta's predictor API has for it.

Imports neither torch nor onnxruntime: the ONNX path takes it without torch."""

from __future__ import annotations

from typing import Generic, TypeVar

from samkit.errors import SamkitError
from samkit.families.state import ImageState

__all__ = ["CurrentImage", "EncodedImage"]

EncodedImage = ImageState
"""What a state holds (the one :class:`~samkit.families.state.ImageState` type)."""

S = TypeVar("S", bound=ImageState)
T = TypeVar("T")


class CurrentImage(Generic[S, T]):
    """Accessors of the current image kept in ``self._state`` (a state ``S`` whose features
    are ``T``: a torch tensor or a NumPy array); the subclass sets ``_state`` when it encodes
    or restores an image."""

    _state: S | None = None

    @property
    def is_image_set(self) -> bool:
        return self._state is not None

    @property
    def features(self) -> T:
        return self._require_state().features

    @property
    def original_size(self) -> tuple[int, int]:
        return self._require_state().original_size

    @property
    def input_size(self) -> tuple[int, int]:
        return self._require_state().input_size

    def reset_image(self) -> None:
        """Forget the current image and its embedding."""
        self._state = None

    def get_image_embedding(self) -> T:
        """The current image embedding, (1, 256, 64, 64) float32."""
        return self._require_state().features

    def get_image_state(self) -> S:
        """The current image's embedding and sizes, e.g. to cache on a server."""
        return self._require_state()

    def _require_state(self) -> S:
        if self._state is None:
            raise SamkitError("no image is set: call set_image(...) before predicting")
        return self._state
