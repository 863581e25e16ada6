"""What decoding needs about one encoded image: :class:`ImageState` (the embedding, the image's
sizes and a family's extra feature maps; cache it to skip the encoder) and its
:class:`PreparedDecoder`. Defined in :mod:`samkit.families.state` with the array codec."""

from __future__ import annotations

from samkit.families.state import ImageState, PreparedDecoder, state_from_arrays, state_to_arrays

__all__ = ["ImageState", "PreparedDecoder", "state_from_arrays", "state_to_arrays"]
