"""Recognise a SAM-1 architecture from a state dict's tensor names and shapes alone, never from
a file name: Meta's ViT encoders and MobileSAM's TinyViT, official or custom sizes."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from samkit import registry
from samkit.errors import CheckpointError
from samkit.registry import SamConfig, TinyViTConfig, ViTConfig

__all__ = ["decoder_fields", "recognize_sam1"]

_ENC = "image_encoder."


def recognize_sam1(state_dict: Mapping[str, Any]) -> SamConfig | None:
    """The :class:`SamConfig` whose network has exactly these tensors (names and shapes), or
    ``None`` when they hold no SAM-1 image encoder.

    Works for Meta's ViT encoders and MobileSAM's TinyViT, official or custom sizes, from the
    tensors alone. ``decoder_num_heads`` cannot be read from tensors (the heads split one
    projection) and is set to 8, the value of every published SAM decoder; the image size of a
    TinyViT encoder is likewise not stored and is taken as 1024; pixel mean / std come from the
    ``pixel_mean`` / ``pixel_std`` tensors if present, else the SAM defaults.

    Raises:
        CheckpointError: a SAM-1 image encoder's tensors with the rest missing or mis-shaped.
    """
    sd = state_dict
    try:
        if f"{_ENC}patch_embed.proj.weight" in sd and f"{_ENC}blocks.0.norm1.weight" in sd:
            encoder: ViTConfig | TinyViTConfig = _infer_vit(sd)
        elif f"{_ENC}layers.0.blocks.0.conv1.c.weight" in sd:
            encoder = _infer_tiny_vit(sd)
        else:
            return None
        return SamConfig(encoder=encoder, **decoder_fields(sd))
    except (AttributeError, IndexError, ValueError, ZeroDivisionError) as exc:
        raise CheckpointError(f"not a SAM checkpoint: unexpected tensor shapes ({exc})") from exc


def decoder_fields(sd: Mapping[str, Any]) -> dict[str, Any]:
    """:class:`SamConfig`'s prompt-encoder, decoder and pixel-statistics fields from SAM's
    ``prompt_encoder.*`` / ``mask_decoder.*`` tensors (shared by the families that keep SAM's
    decoder). ``decoder_num_heads`` is not stored and is 8, as in every published decoder.

    Raises:
        CheckpointError: a tensor is missing.
    """
    pe, md = "prompt_encoder.", "mask_decoder."
    return {
        "prompt_embed_dim": _shape(sd, f"{pe}no_mask_embed.weight")[1],
        "mask_in_chans": _shape(sd, f"{pe}mask_downscaling.3.weight")[0],
        "decoder_depth": _count(sd, f"{md}transformer.layers."),
        "decoder_num_heads": 8,
        "decoder_mlp_dim": _shape(sd, f"{md}transformer.layers.0.mlp.lin1.weight")[0],
        "num_multimask_outputs": _shape(sd, f"{md}mask_tokens.weight")[0] - 1,
        "iou_head_depth": _count(sd, f"{md}iou_prediction_head.layers.", suffix="weight"),
        "iou_head_hidden_dim": _shape(sd, f"{md}iou_prediction_head.layers.0.weight")[0],
        "pixel_mean": _rgb(sd, "pixel_mean", registry.PIXEL_MEAN),
        "pixel_std": _rgb(sd, "pixel_std", registry.PIXEL_STD),
    }


def _shape(sd: Mapping[str, Any], key: str) -> tuple[int, ...]:
    if key not in sd:
        raise CheckpointError(f"not a SAM checkpoint: tensor {key!r} is missing")
    return tuple(int(s) for s in sd[key].shape)


def _rgb(
    sd: Mapping[str, Any], key: str, default: tuple[float, float, float]
) -> tuple[float, float, float]:
    """Per-channel statistics stored as a (3, 1, 1) buffer, or ``default`` when absent."""
    if key not in sd:
        return default
    r, g, b = (float(x) for x in sd[key].flatten())
    return (r, g, b)


def _count(sd: Mapping[str, Any], prefix: str, suffix: str = "") -> int:
    """Number of distinct ``<prefix><i>.`` indexes (optionally only keys ``<prefix><i>.<suffix>``)."""
    pattern = re.compile(re.escape(prefix) + r"(\d+)\." + re.escape(suffix))
    indexes = {int(m.group(1)) for k in sd if (m := pattern.match(k))}
    if not indexes:
        raise CheckpointError(f"not a SAM checkpoint: no tensors named {prefix}<i>.*")
    if indexes != set(range(len(indexes))):
        raise CheckpointError(f"not a SAM checkpoint: {prefix}<i> indexes are not 0..n-1")
    return len(indexes)


def _infer_vit(sd: Mapping[str, Any]) -> ViTConfig:
    embed_dim, _, patch, _ = _shape(sd, f"{_ENC}patch_embed.proj.weight")
    _, grid, _, _ = _shape(sd, f"{_ENC}pos_embed")
    depth = _count(sd, f"{_ENC}blocks.")
    if f"{_ENC}blocks.0.attn.rel_pos_h" not in sd:
        raise CheckpointError(
            "unsupported ViT checkpoint: without relative position tensors (attn.rel_pos_h) "
            "the number of heads and the attention windows cannot be recognised"
        )
    head_dim = _shape(sd, f"{_ENC}blocks.0.attn.rel_pos_h")[1]
    global_blocks, windows = [], set()
    for i in range(depth):
        length = _shape(sd, f"{_ENC}blocks.{i}.attn.rel_pos_h")[0]
        if length == 2 * grid - 1:
            global_blocks.append(i)
        else:
            windows.add((length + 1) // 2)
    if len(windows) > 1:
        raise CheckpointError(f"unsupported ViT checkpoint: several window sizes {sorted(windows)}")
    return ViTConfig(
        embed_dim=embed_dim,
        depth=depth,
        num_heads=embed_dim // head_dim,
        global_attn_indexes=tuple(global_blocks),
        patch_size=patch,
        window_size=windows.pop() if windows else ViTConfig.window_size,
        mlp_ratio=_shape(sd, f"{_ENC}blocks.0.mlp.lin1.weight")[0] / embed_dim,
        img_size=grid * patch,
        out_chans=_shape(sd, f"{_ENC}neck.0.weight")[0],
        qkv_bias=f"{_ENC}blocks.0.attn.qkv.bias" in sd,
        use_rel_pos=True,
    )


def _infer_tiny_vit(sd: Mapping[str, Any]) -> TinyViTConfig:
    hidden, first_dim = _shape(sd, f"{_ENC}layers.0.blocks.0.conv1.c.weight")[:2]
    embed_dims, depths, heads, windows = [first_dim], [], [], []
    for k in range(_count(sd, f"{_ENC}layers.")):
        block = f"{_ENC}layers.{k}.blocks.0."
        depths.append(_count(sd, f"{_ENC}layers.{k}.blocks."))
        if k == 0:
            continue
        embed_dims.append(_shape(sd, f"{block}attn.qkv.weight")[1])
        n_heads, n_offsets = _shape(sd, f"{block}attn.attention_biases")
        window = round(n_offsets**0.5)
        if window * window != n_offsets:
            raise CheckpointError(
                f"not a TinyViT checkpoint: {block}attn.attention_biases has {n_offsets} "
                "offsets, not a square number"
            )
        heads.append(n_heads)
        windows.append(window)
    if len(embed_dims) < 2:
        raise CheckpointError("unsupported TinyViT checkpoint: no attention stages")
    attn = f"{_ENC}layers.1.blocks.0."
    return TinyViTConfig(
        embed_dims=tuple(embed_dims),
        depths=tuple(depths),
        # Stage 0 is convolutional; its head count and window are not stored. TinyViT's
        # constructors give it the values of stage 1 (MobileSAM: 2 heads / window 7 are unused).
        num_heads=(_stage0_heads(first_dim, embed_dims[1], heads[0]), *heads),
        window_sizes=(windows[0], *windows),
        mlp_ratio=_shape(sd, f"{attn}mlp.fc1.weight")[0] / embed_dims[1],
        mbconv_expand_ratio=hidden / first_dim,
        local_conv_size=_shape(sd, f"{attn}local_conv.c.weight")[-1],
        out_chans=_shape(sd, f"{_ENC}neck.0.weight")[0],
    )


def _stage0_heads(dim0: int, dim1: int, heads1: int) -> int:
    """Heads of the convolutional stage 0 (unused; by convention the same head width as stage 1)."""
    head_dim = dim1 // heads1
    return max(1, dim0 // head_dim)
