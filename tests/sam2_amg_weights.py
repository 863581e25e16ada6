"""SAM 2 weights under which segment everything draws real, varied masks: the disc-drawing
decoder of :mod:`amg_weights` (SAM-1) carried over to SAM 2's key names, with SAM 2's extras
neutralised (object-score token, high-res skips, ``no_mem_embed`` zero) and the sigmoid IoU
head's logits placed around 0.8. The image side is replaced on both networks by the same
location features (:class:`Sam2LocationEncoder`, Meta's and samkit's encoder outputs), after
the real encoder has run: the decoders, the generators' grids, filters and NMS are what is
compared."""

from __future__ import annotations

import math
from typing import Any

import torch

from amg_weights import blob_weights, location_features

_RENAME = (
    ("sam_mask_decoder.", "mask_decoder."),
    ("sam_prompt_encoder.", "prompt_encoder."),
    (".mlp.layers.0.", ".mlp.lin1."),
    (".mlp.layers.1.", ".mlp.lin2."),
)
IOU_PROBS = (0.86, 0.88, 0.84, 0.82)  # sigmoid IoU at the bump's base, per mask token


def _to_sam1(key: str) -> str:
    for a, b in _RENAME:
        key = key.replace(a, b)
    return key


def sam2_blob_weights(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A SAM 2 state dict (Meta's names) rewritten into the disc-drawing decoder."""
    heads = ("sam_mask_decoder.", "sam_prompt_encoder.")
    names = {_to_sam1(k): k for k in state if k.startswith(heads)}
    blob = blob_weights({k1: state[k] for k1, k in names.items()})
    out = {k: v.clone() for k, v in state.items()}
    for k1, k in names.items():
        out[k] = blob[k1]
    for key in out:
        if key.startswith(("sam_mask_decoder.conv_s", "sam_mask_decoder.obj_score_token")):
            out[key] = torch.zeros_like(out[key])
    out["no_mem_embed"] = torch.zeros_like(out["no_mem_embed"])
    head = "sam_mask_decoder.iou_prediction_head.layers.2."
    out[head + "weight"] = out[head + "weight"] * 8.0
    out[head + "bias"] = torch.tensor([math.log(p / (1 - p)) for p in IOU_PROBS])
    return out


def _location(like: torch.Tensor) -> torch.Tensor:
    feats = torch.zeros_like(like)
    loc = location_features(like.shape[-2], like.shape[-1]).permute(2, 0, 1)
    feats[:, : loc.shape[0]] = loc.to(like)
    return feats


class Sam2LocationEncoder(torch.nn.Module):
    """Wraps an image encoder (Meta's, returning a dict, or samkit's, returning the three
    levels): runs it, then returns zero high-res levels and the location features at 64x64."""

    def __init__(self, encoder: torch.nn.Module) -> None:
        super().__init__()
        self.inner = encoder
        self.neck = getattr(encoder, "neck", None)

    def forward(self, x: torch.Tensor) -> Any:
        out = self.inner(x)
        levels = out["backbone_fpn"] if isinstance(out, dict) else out
        new = [torch.zeros_like(levels[0]), torch.zeros_like(levels[1]), _location(levels[2])]
        if isinstance(out, dict):
            return {**out, "backbone_fpn": new, "vision_features": new[-1]}
        return new


def blob_models(image_size: int = 256, seed: int = 0) -> tuple[Any, Any]:
    """(Meta's, samkit's) SAM 2.1 tiny networks with :func:`sam2_blob_weights` and the location
    encoder, eval mode."""
    from dataclasses import replace

    from reference import randomize
    from sam2_reference import meta_model
    from samkit.sam2.build import build_sam2_from_config, load_sam2_state
    from samkit.sam2.variants import SAM2_VARIANTS

    ref = meta_model("tiny", image_size=image_size, seed=seed)
    state = sam2_blob_weights(randomize(ref, seed))
    ref.load_state_dict(state)
    config = replace(SAM2_VARIANTS["sam2.1_hiera_tiny"].config, image_size=image_size)
    ours = build_sam2_from_config(config)
    load_sam2_state(ours, state, "blob weights")
    ref.image_encoder = Sam2LocationEncoder(ref.image_encoder)
    ours.image_encoder = Sam2LocationEncoder(ours.image_encoder)  # type: ignore[assignment]
    return ref.eval(), ours.eval()
