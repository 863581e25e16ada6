"""The encoded-image state every backend passes around, and its one array codec.

:class:`ImageState` is what an engine's ``encode`` returns and ``decode`` takes back: the
image embedding, the image's sizes and, for families whose decoder needs more than one
feature map (SAM 2.1's high-resolution levels, SAM-HQ's early ViT features), named
``extras``. Arrays are torch tensors (torch engines) or NumPy arrays (ONNX Runtime, the
embedding store, Ray blocks); nothing here imports torch.

:func:`state_to_arrays` / :func:`state_from_arrays` are the one codec between a state and a
flat ``dict[str, np.ndarray]``: the embedding store (``.npz``), the Ray stages (packed
blocks) and the ONNX Runtime predictor use it, so a family that adds extras is stored,
shipped and restored without touching them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from samkit.errors import SamkitError

if TYPE_CHECKING:
    import torch

    from samkit.modeling import Sam
    from samkit.modeling.decoder_fast import DecoderCache

__all__ = ["ImageState", "PreparedDecoder", "state_from_arrays", "state_to_arrays"]

_EXTRA = "extra."


@dataclass
class PreparedDecoder:
    """The decoder's prompt-independent work for one image (valid for every prompt without a
    mask prompt), one :class:`~samkit.modeling.decoder_fast.DecoderCache` per compute dtype,
    filled lazily by the predictor."""

    by_dtype: dict[Any, DecoderCache] = field(default_factory=dict)

    def get(self, model: Sam, features: torch.Tensor, dtype: torch.dtype) -> DecoderCache:
        """The cache for ``dtype``, computed from ``features`` (1, C, g, g) on first use."""
        cache = self.by_dtype.get(dtype)
        if cache is None:
            cache = self.by_dtype[dtype] = model.prepare_decoder(features)
        return cache


@dataclass(frozen=True)
class ImageState:
    """Everything decoding needs about one encoded image; cache it to skip the encoder.

    features: (1, C, g, g) image embedding (C = 256, g = 64 for the published SAM models), a
    torch tensor or a NumPy array. original_size: (H, W) of the user's image. input_size:
    (h, w) of the image's valid region in the prompt frame (the resized image inside the
    padded input for SAM-1; the whole frame for a square resize). extras: further named
    arrays a family's decoder needs (empty for SAM-1).
    """

    features: Any
    original_size: tuple[int, int]
    input_size: tuple[int, int]
    extras: Mapping[str, Any] = field(default_factory=dict, compare=False)
    decoder: PreparedDecoder = field(default_factory=PreparedDecoder, compare=False, repr=False)


def _numpy(x: Any, dtype: Any = np.float32) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor: the edge where NumPy is needed
        x = x.detach().float().cpu().numpy()
    return np.asarray(x, dtype=dtype)


def state_to_arrays(state: Any, dtype: Any = np.float32) -> dict[str, np.ndarray]:
    """Any state (an :class:`ImageState` or an object with ``features``, ``original_size``,
    ``input_size`` and optionally ``extras``) -> ``{"features", "original_size",
    "input_size", "extra.<name>"...}``; float arrays are cast to ``dtype``, sizes int64."""
    out = {
        "features": _numpy(state.features, dtype),
        "original_size": np.asarray(state.original_size, dtype=np.int64),
        "input_size": np.asarray(state.input_size, dtype=np.int64),
    }
    for name, value in (getattr(state, "extras", None) or {}).items():
        out[_EXTRA + name] = _numpy(value, dtype)
    return out


def state_from_arrays(arrays: Mapping[str, Any]) -> ImageState:
    """The inverse of :func:`state_to_arrays`: NumPy features and extras, int sizes.

    Raises:
        SamkitError: a required entry is missing or a size is not two integers.
    """
    missing = [k for k in ("features", "original_size", "input_size") if k not in arrays]
    if missing:
        raise SamkitError(f"not an image state: {', '.join(missing)} missing")
    sizes = []
    for key in ("original_size", "input_size"):
        size = np.asarray(arrays[key]).reshape(-1).tolist()
        if len(size) != 2:
            raise SamkitError(f"not an image state: {key} must be (H, W), got {size}")
        sizes.append((int(size[0]), int(size[1])))
    extras = {k[len(_EXTRA) :]: np.asarray(v) for k, v in arrays.items() if k.startswith(_EXTRA)}
    return ImageState(np.asarray(arrays["features"]), sizes[0], sizes[1], extras)
