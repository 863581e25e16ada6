"""Everything-mode parameter names: Meta's, and Ultralytics' spellings of the same knobs."""

from __future__ import annotations

import difflib
import os
from typing import Any

from samkit.errors import SamkitError

__all__ = ["GENERATOR_PARAMS", "ULTRALYTICS_ARGS", "everything_params", "settings_key"]

# Ultralytics' ``Predictor.generate`` argument -> Meta's ``SamAutomaticMaskGenerator`` parameter.
# Names both use are listed too, so the table answers "is this an everything-mode key?".
# Only the names are mapped: defaults stay Meta's (Ultralytics' stability_score_offset default
# is 0.95, Meta's 1.0).
ULTRALYTICS_ARGS: dict[str, str] = {
    "points_stride": "points_per_side",
    "points_batch_size": "points_per_batch",
    "conf_thres": "pred_iou_thresh",
    "stability_score_thresh": "stability_score_thresh",
    "stability_score_offset": "stability_score_offset",
    "crop_n_layers": "crop_n_layers",
    "crop_overlap_ratio": "crop_overlap_ratio",
    "crop_downscale_factor": "crop_n_points_downscale_factor",
    "crop_nms_thresh": "crop_nms_thresh",
    "point_grids": "point_grids",
}

# The front's prompt arguments, offered for near misses such as point= or box=.
PROMPT_NAMES = ("points", "labels", "bboxes", "masks")

# Meta's parameters plus samkit's opt-in speed settings.
GENERATOR_PARAMS: tuple[str, ...] = (
    "points_per_side",
    "points_per_batch",
    "pred_iou_thresh",
    "stability_score_thresh",
    "stability_score_offset",
    "box_nms_thresh",
    "crop_n_layers",
    "crop_nms_thresh",
    "crop_overlap_ratio",
    "crop_n_points_downscale_factor",
    "point_grids",
    "min_mask_region_area",
    "output_mode",
    "low_res_filter",
    "bf16",
    "skip_covered",
    "fast",
    "verbose",
    "decoder_batch",
    "prompts_from",
)

# Old spellings still accepted -> the documented name.
OLD_NAMES: dict[str, str] = {"decode_batch": "decoder_batch"}


def everything_params(**kwargs: Any) -> dict[str, Any]:
    """Normalise everything-mode settings given in Meta's or Ultralytics' names to Meta's.

    ``everything_params(points_stride=16, conf_thres=0.8)`` ->
    ``{"points_per_side": 16, "pred_iou_thresh": 0.8}``. Unknown names raise
    :class:`SamkitError` with the closest valid name; the same setting given twice (once per
    naming) raises too.
    """
    out: dict[str, Any] = {}
    source: dict[str, str] = {}
    valid = sorted({*GENERATOR_PARAMS, *ULTRALYTICS_ARGS})
    for key, value in kwargs.items():
        name = OLD_NAMES.get(key) or ULTRALYTICS_ARGS.get(key, key)
        if name not in GENERATOR_PARAMS:
            close = difflib.get_close_matches(key, [*PROMPT_NAMES, *valid], n=1, cutoff=0.6)
            if close and close[0] in PROMPT_NAMES:
                raise SamkitError(
                    f"unknown argument {key!r}; did you mean the prompt {close[0]!r}?"
                )
            hint = (
                f"; did you mean {close[0]!r}?" if close else f"; valid names: {', '.join(valid)}"
            )
            raise SamkitError(f"unknown everything-mode argument {key!r}{hint}")
        if name in out:
            raise SamkitError(
                f"{key!r} and {source[name]!r} set the same parameter {name!r}; give one"
            )
        out[name] = value
        source[name] = key
    return out


def settings_key(params: dict[str, Any]) -> str:
    """A key telling two sets of (normalised) everything-mode settings apart, for caching a
    generator: values by ``repr``, except a detector object given as ``prompts_from`` (a
    model, a callable), which is told apart by identity."""
    keyed = dict(params)
    det = keyed.get("prompts_from")
    if det is not None and not isinstance(det, (str, os.PathLike)):
        keyed["prompts_from"] = f"<{type(det).__name__} object at {id(det):#x}>"
    return repr(sorted(keyed.items(), key=lambda kv: kv[0]))
