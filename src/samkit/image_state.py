"""What decoding needs about one encoded image: :class:`ImageState` (the embedding and the
image's sizes; cache it to skip the encoder) and its :class:`PreparedDecoder` (the decoder's
prompt-independent work for that image, filled on first use)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from samkit.modeling import Sam
from samkit.modeling.decoder_fast import DecoderCache

__all__ = ["ImageState", "PreparedDecoder"]


@dataclass
class PreparedDecoder:
    """The decoder's prompt-independent work for one image (valid for every prompt without a
    mask prompt), one :class:`~samkit.modeling.decoder_fast.DecoderCache` per compute dtype,
    filled lazily by the predictor."""

    by_dtype: dict[torch.dtype, DecoderCache] = field(default_factory=dict)

    def get(self, model: Sam, features: torch.Tensor, dtype: torch.dtype) -> DecoderCache:
        """The cache for ``dtype``, computed from ``features`` (1, 256, 64, 64) on first use."""
        cache = self.by_dtype.get(dtype)
        if cache is None:
            cache = self.by_dtype[dtype] = model.prepare_decoder(features)
        return cache


@dataclass(frozen=True)
class ImageState:
    """Everything decoding needs about one encoded image; cache it to skip the encoder.

    features: (1, 256, 64, 64) image embedding. original_size / input_size: (H, W) of the
    user's image and of the resized image inside the padded model input.
    """

    features: torch.Tensor
    original_size: tuple[int, int]
    input_size: tuple[int, int]
    decoder: PreparedDecoder = field(default_factory=PreparedDecoder, compare=False, repr=False)
