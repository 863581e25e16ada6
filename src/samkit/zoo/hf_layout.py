"""Hugging Face ``transformers`` checkpoints (``SamModel``, ``SamHQModel``) in the official layout.

``facebook/sam-vit-*``, ``Zigeng/SlimSAM-uniform-50/77``, ``lkeab/hq-sam``-style ``SamHQModel``
files and anything else saved by ``SamModel.save_pretrained`` hold the same tensors as Meta's
(or SAM-HQ's) ``.pth`` under other names. :func:`from_hf_layout` renames them, so recognition,
building and parity all see one layout. Pure key renaming: no tensor is changed.

Known difference kept on purpose: ``transformers`` builds the decoder transformer's
LayerNorms with ``eps=1e-6`` where Meta's (and therefore the released weights') is ``1e-5``;
samkit builds Meta's network, so outputs differ from ``transformers`` by that epsilon alone
(well inside the parity tolerances, see ``tests/model/test_zoo_parity.py``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["from_hf_layout", "is_hf_layout"]

_MARK = "vision_encoder.patch_embed.projection.weight"

# Whole-name renames (after the prefix rules below). Order matters only within a rule list.
_RULES: tuple[tuple[str, str], ...] = (
    # image encoder
    (r"^vision_encoder\.patch_embed\.projection\.", "image_encoder.patch_embed.proj."),
    (r"^vision_encoder\.pos_embed$", "image_encoder.pos_embed"),
    (r"^vision_encoder\.layers\.(\d+)\.layer_norm(\d)\.", r"image_encoder.blocks.\1.norm\2."),
    (r"^vision_encoder\.layers\.(\d+)\.", r"image_encoder.blocks.\1."),
    (r"^vision_encoder\.neck\.conv1\.", "image_encoder.neck.0."),
    (r"^vision_encoder\.neck\.layer_norm1\.", "image_encoder.neck.1."),
    (r"^vision_encoder\.neck\.conv2\.", "image_encoder.neck.2."),
    (r"^vision_encoder\.neck\.layer_norm2\.", "image_encoder.neck.3."),
    # prompt encoder
    (
        r"^prompt_encoder\.shared_embedding\.positional_embedding$",
        "prompt_encoder.pe_layer.positional_encoding_gaussian_matrix",
    ),
    (r"^prompt_encoder\.point_embed\.(\d+)\.", r"prompt_encoder.point_embeddings.\1."),
    (r"^prompt_encoder\.mask_embed\.conv1\.", "prompt_encoder.mask_downscaling.0."),
    (r"^prompt_encoder\.mask_embed\.layer_norm1\.", "prompt_encoder.mask_downscaling.1."),
    (r"^prompt_encoder\.mask_embed\.conv2\.", "prompt_encoder.mask_downscaling.3."),
    (r"^prompt_encoder\.mask_embed\.layer_norm2\.", "prompt_encoder.mask_downscaling.4."),
    (r"^prompt_encoder\.mask_embed\.conv3\.", "prompt_encoder.mask_downscaling.6."),
    # mask decoder: transformer
    (r"^(mask_decoder\.transformer\.layers\.\d+)\.layer_norm(\d)\.", r"\1.norm\2."),
    (
        r"^mask_decoder\.transformer\.layer_norm_final_attn\.",
        "mask_decoder.transformer.norm_final_attn.",
    ),
    # mask decoder: upscaling
    (r"^mask_decoder\.upscale_conv1\.", "mask_decoder.output_upscaling.0."),
    (r"^mask_decoder\.upscale_layer_norm\.", "mask_decoder.output_upscaling.1."),
    (r"^mask_decoder\.upscale_conv2\.", "mask_decoder.output_upscaling.3."),
    # mask decoder: SAM-HQ additions
    (r"^mask_decoder\.hq_token\.", "mask_decoder.hf_token."),
    (r"^mask_decoder\.hq_mask_mlp\.", "mask_decoder.hf_mlp."),
    (r"^mask_decoder\.compress_vit_conv1\.", "mask_decoder.compress_vit_feat.0."),
    (r"^mask_decoder\.compress_vit_norm\.", "mask_decoder.compress_vit_feat.1."),
    (r"^mask_decoder\.compress_vit_conv2\.", "mask_decoder.compress_vit_feat.3."),
    (r"^mask_decoder\.encoder_conv1\.", "mask_decoder.embedding_encoder.0."),
    (r"^mask_decoder\.encoder_norm\.", "mask_decoder.embedding_encoder.1."),
    (r"^mask_decoder\.encoder_conv2\.", "mask_decoder.embedding_encoder.3."),
    (r"^mask_decoder\.mask_conv1\.", "mask_decoder.embedding_maskfeature.0."),
    (r"^mask_decoder\.mask_norm\.", "mask_decoder.embedding_maskfeature.1."),
    (r"^mask_decoder\.mask_conv2\.", "mask_decoder.embedding_maskfeature.3."),
)
_COMPILED = tuple((re.compile(p), r) for p, r in _RULES)
# transformers' MLP heads: proj_in, layers.0 .. layers.{n-3}, proj_out
_MLP = re.compile(
    r"^(mask_decoder\.(?:iou_prediction_head|output_hypernetworks_mlps\.\d+|hf_mlp))\."
    r"(proj_in|proj_out|layers\.(\d+))\.(weight|bias)$"
)
# Copies of the positional matrix that the official layout stores once.
_DROPPED = ("shared_image_embedding.positional_embedding",)


def is_hf_layout(state_dict: Mapping[str, Any]) -> bool:
    """Whether ``state_dict`` is a ``transformers`` ``SamModel`` / ``SamHQModel`` state dict."""
    return _MARK in state_dict


def from_hf_layout(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """A ``transformers`` SAM / SAM-HQ state dict renamed to the official layout; any other
    state dict is returned unchanged (as a new dict)."""
    if not is_hf_layout(state_dict):
        return dict(state_dict)
    depth = _mlp_depths(state_dict)
    out: dict[str, Any] = {}
    for key, value in state_dict.items():
        if key in _DROPPED:
            continue
        out[_rename(key, depth)] = value
    return out


def _mlp_depths(state_dict: Mapping[str, Any]) -> dict[str, int]:
    """Number of linear layers of every MLP head (proj_in + hidden layers + proj_out)."""
    hidden: dict[str, int] = {}
    for key in state_dict:
        m = _MLP.match(key)
        if m:
            count = hidden.setdefault(m.group(1), 0)
            if m.group(3) is not None:
                hidden[m.group(1)] = max(count, int(m.group(3)) + 1)
    return {head: n + 2 for head, n in hidden.items()}


def _rename(key: str, depth: dict[str, int]) -> str:
    m = _MLP.match(key)
    if m:
        head, part, hidden, kind = m.groups()
        index = (
            0 if part == "proj_in" else depth[head] - 1 if part == "proj_out" else 1 + int(hidden)
        )
        return f"{head}.layers.{index}.{kind}"
    for pattern, replacement in _COMPILED:
        new, n = pattern.subn(replacement, key)
        if n:
            return new
    return key
