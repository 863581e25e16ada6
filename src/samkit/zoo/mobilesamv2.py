"""MobileSAMv2 (ChaoningZhang/MobileSAM ``MobileSAMv2/``): SAM's prompt encoder and mask decoder
fine-tuned for its object-aware box prompts, shipped alone as ``Prompt_guided_Mask_Decoder.pt``
(``{"PromtEncoder": ..., "MaskDecoder": ...}``) to be paired with an image encoder (MobileSAM's
TinyViT, SAM-H, ...). Its box proposer is samkit's ``prompts_from=`` (any detector).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from samkit.errors import CheckpointError

if TYPE_CHECKING:
    from samkit.modeling import Sam

__all__ = ["build_mobilesamv2", "load_decoder"]

_PARTS = ("prompt_encoder.", "mask_decoder.")


def load_decoder(network: Sam, decoder: str | os.PathLike[str]) -> Sam:
    """Replace ``network``'s prompt encoder and mask decoder weights with those of a MobileSAMv2
    decoder file (or any checkpoint holding only ``prompt_encoder.*`` / ``mask_decoder.*``
    tensors), every tensor checked by name and shape. Returns ``network``.

    Raises:
        CheckpointError: the file holds other tensors, or its tensors do not fit ``network``.
    """
    import torch

    from samkit.weights import load_state_dict

    state = load_state_dict(decoder)
    other = [k for k in state if not k.startswith(_PARTS)]
    if other:
        raise CheckpointError(
            f"{decoder} is not a decoder checkpoint: it holds {len(other)} other tensors "
            f"(e.g. {', '.join(other[:3])})"
        )
    expected = {k: v for k, v in network.state_dict().items() if k.startswith(_PARTS)}
    missing = sorted(set(expected) - set(state))
    bad = [k for k in expected if k in state and state[k].shape != expected[k].shape]
    extra = sorted(set(state) - set(expected))
    if missing or bad or extra:
        raise CheckpointError(
            f"{decoder} does not fit the network's decoder: missing {missing[:3]}, "
            f"unexpected {extra[:3]}, shape mismatches {bad[:3]}"
        )
    with torch.no_grad():
        for key, value in network.state_dict().items():
            if key in state:
                value.copy_(state[key])
    return network


def build_mobilesamv2(
    encoder: str | os.PathLike[str] = "mobile_sam", decoder: str | os.PathLike[str] = ""
) -> Sam:
    """MobileSAMv2: the network of ``encoder`` (a model name or checkpoint: ``mobile_sam``,
    ``sam_h``, ...) with the prompt encoder and mask decoder of the ``decoder`` file."""
    from samkit.build import build_sam

    if not decoder:
        raise CheckpointError(
            "build_mobilesamv2 needs decoder= the path of MobileSAMv2's "
            "Prompt_guided_Mask_Decoder.pt (published on Google Drive, not downloadable here)"
        )
    return load_decoder(build_sam(encoder), decoder)
