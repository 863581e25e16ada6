"""Recognise a SAM 2 / SAM 2.1 network from a state dict's tensor names and shapes alone."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from samkit.errors import CheckpointError
from samkit.sam2.config import TRUNKS, Sam2Config

__all__ = ["infer_sam2_config", "is_sam2_state"]

_TRUNK = "image_encoder.trunk."


def is_sam2_state(state_dict: Mapping[str, Any]) -> bool:
    """True for the tensors of a SAM 2 network (a Hiera trunk and SAM 2's decoder names)."""
    return f"{_TRUNK}pos_embed_window" in state_dict and any(
        k.startswith("sam_mask_decoder.") for k in state_dict
    )


def _stages(sd: Mapping[str, Any]) -> tuple[int, ...]:
    """Blocks per stage: a stage starts at block 0 and at every block with a projection."""
    pattern = re.compile(re.escape(_TRUNK) + r"blocks\.(\d+)\.")
    depth = 1 + max(int(m.group(1)) for k in sd if (m := pattern.match(k)))
    starts = [0] + [i for i in range(depth) if f"{_TRUNK}blocks.{i}.proj.weight" in sd]
    ends = [*starts[1:], depth]
    return tuple(e - s for s, e in zip(starts, ends, strict=True))


def infer_sam2_config(state_dict: Mapping[str, Any]) -> Sam2Config:
    """The :class:`Sam2Config` of these tensors (SAM 2.0 or 2.1, tiny / small / base+ / large).

    Head counts, window sizes and global-attention blocks are not stored in the tensors; they
    are those of the published trunk with the same width and stage depths.

    Raises:
        CheckpointError: not SAM 2 tensors, or a trunk of no published size.
    """
    sd = state_dict
    if not is_sam2_state(sd):
        raise CheckpointError("not a SAM 2 checkpoint: no image_encoder.trunk.pos_embed_window")
    try:
        embed_dim = int(sd[f"{_TRUNK}patch_embed.proj.weight"].shape[0])
        stages = _stages(sd)
        bkg = tuple(int(s) for s in sd[f"{_TRUNK}pos_embed"].shape[-2:])
        window0 = int(sd[f"{_TRUNK}pos_embed_window"].shape[-1])
    except (KeyError, ValueError, IndexError) as exc:
        raise CheckpointError(f"not a SAM 2 checkpoint: unexpected trunk tensors ({exc})") from exc
    for trunk in TRUNKS.values():
        if (trunk.embed_dim, trunk.stages) == (embed_dim, stages):
            break
    else:
        raise CheckpointError(
            f"SAM 2 checkpoint with an unpublished Hiera trunk (width {embed_dim}, stages "
            f"{stages}); known: "
            + ", ".join(f"{n} {t.embed_dim}/{t.stages}" for n, t in TRUNKS.items())
        )
    if bkg != trunk.window_pos_embed_bkg_spatial_size or window0 != trunk.window_spec[0]:
        raise CheckpointError(
            f"SAM 2 checkpoint: position embeddings {bkg} / window {window0} do not match the "
            f"published trunk of width {embed_dim}"
        )
    version = "2.1" if "no_obj_embed_spatial" in sd else "2.0"
    return replace(Sam2Config(), trunk=trunk, version=version)
