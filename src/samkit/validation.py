"""Checks of user input shared by every engine (torch and the torch-free backends).

Each raises :class:`~samkit.errors.SamkitError` / :class:`~samkit.errors.PromptError` naming
the argument and what was expected. NumPy only.
"""

from __future__ import annotations

import numpy as np

from samkit.errors import ArgumentError, PromptError, SamkitError

__all__ = [
    "MAX_COORD",
    "check_box",
    "check_coordinate_range",
    "check_coordinates",
    "check_generator_settings",
    "check_image",
    "check_mask_input",
    "check_points",
]

POINT_LABELS = (-1, 0, 1, 2, 3)
# Prompt coordinates are pixels; beyond this they can only be a mistake (and overflow float32
# arithmetic on the way to NaN scores).
MAX_COORD = 1e6


def check_image(image: object, name: str = "image") -> np.ndarray:
    """An (H, W, 3) uint8 image; grayscale (H, W) is expanded to 3 channels."""
    if not isinstance(image, np.ndarray):
        raise SamkitError(
            f"{name} must be a numpy array of shape (H, W, 3), got {type(image).__name__}"
        )
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] != 3:
        raise SamkitError(
            f"{name} must have shape (H, W, 3) (or (H, W) grayscale), got {image.shape}"
        )
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise SamkitError(f"{name} is empty: shape {image.shape}")
    if image.dtype != np.uint8:
        raise SamkitError(f"{name} must be uint8 with values in [0, 255], got dtype {image.dtype}")
    return image


def check_points(
    point_coords: object, point_labels: object, batched: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Points: coords (K, 2) XY with labels (K,), or (B, K, 2) / (B, K) when ``batched``.

    Returns float64 coords and int64 labels (1 foreground, 0 background, 2 / 3 box corners,
    -1 padding).
    """
    if point_coords is None or point_labels is None:
        raise PromptError("point_coords and point_labels must be given together")
    coords = check_coordinates(point_coords, "point_coords")
    labels = np.asarray(point_labels)
    want = "(B, K, 2)" if batched else "(K, 2)"
    if coords.ndim != (3 if batched else 2) or coords.shape[-1] != 2:
        raise PromptError(f"point_coords must have shape {want} as (x, y), got {coords.shape}")
    if labels.shape != coords.shape[:-1]:
        raise PromptError(
            f"point_labels must have shape {coords.shape[:-1]} to match point_coords, "
            f"got {labels.shape}"
        )
    if not np.isin(labels, POINT_LABELS).all():
        raise PromptError(
            "point_labels must be 1 (foreground), 0 (background), 2/3 (box corners) or -1, "
            f"got {np.unique(labels).tolist()}"
        )
    return coords, labels.astype(np.int64)


def check_mask_input(mask_input: object, ndim: int, low_res: int) -> np.ndarray:
    """Low-res logits from a previous call: (1, s, s) for ``ndim`` 3, (B, 1, s, s) for 4,
    with s = ``low_res`` (256 for 1024-input models). Returns float32."""
    want = f"(1, {low_res}, {low_res})" if ndim == 3 else f"(B, 1, {low_res}, {low_res})"
    with np.errstate(over="ignore"):  # beyond float32 becomes inf, rejected below
        arr = _numbers(mask_input, "mask_input", f"low-res logits of shape {want}").astype(
            np.float32
        )
    if arr.ndim != ndim or arr.shape[-3:] != (1, low_res, low_res):
        raise PromptError(f"mask_input must be low-res logits of shape {want}, got {arr.shape}")
    if not np.isfinite(arr).all():
        raise PromptError("mask_input contains NaN or infinite values (or values beyond float32)")
    return arr


def _numbers(value: object, name: str, expected: str) -> np.ndarray:
    """``value`` as a float64 array; PromptError for strings, objects and other non-numbers."""
    raw = np.asarray(value)
    if raw.dtype.kind in "biuf":
        return raw.astype(np.float64)
    if raw.dtype.kind not in "USV":  # strings are refused even when they spell numbers
        try:
            return raw.astype(np.float64)
        except (ValueError, TypeError):
            pass
    raise PromptError(f"{name} must be numbers ({expected}), got {raw.dtype} values")


def check_coordinates(value: object, name: str, expected: str = "pixels") -> np.ndarray:
    """Pixel coordinates as float64: numbers, finite, at most :data:`MAX_COORD` in absolute
    value (NaN, inf or 1e300 would give NaN scores and empty masks)."""
    return check_coordinate_range(_numbers(value, name, expected), name)


def check_coordinate_range(arr: np.ndarray, name: str) -> np.ndarray:
    """``arr`` (pixel coordinates, float) as is when finite and at most :data:`MAX_COORD` in
    absolute value; PromptError naming ``name`` otherwise."""
    if not np.isfinite(arr).all():
        raise PromptError(f"{name} contains NaN or infinite values")
    if arr.size and np.abs(arr).max() > MAX_COORD:
        raise PromptError(
            f"{name} has a value of {np.abs(arr).max():.3g}; coordinates are pixels, at most "
            f"{MAX_COORD:.0e} in absolute value"
        )
    return arr


def check_box(box: object, name: str = "box") -> np.ndarray:
    """One box (4,) XYXY in pixels, checked like :func:`check_coordinates`."""
    arr = check_coordinates(box, name, "x1, y1, x2, y2")
    if arr.size != 4:
        raise PromptError(f"{name} must be 4 numbers XYXY (shape (4,)), got shape {arr.shape}")
    return arr.reshape(4)


# name -> (low, high, low inclusive, high inclusive) for the generator's float settings
_UNIT_RANGES = {
    "pred_iou_thresh": (0.0, 1.0, True, True),
    "stability_score_thresh": (0.0, 1.0, True, True),
    "box_nms_thresh": (0.0, 1.0, False, True),
    "crop_nms_thresh": (0.0, 1.0, False, True),
    "crop_overlap_ratio": (0.0, 1.0, True, False),
}


def check_generator_settings(**settings: object) -> None:
    """Segment-everything settings: thresholds in their ranges (finite numbers), counts as
    ints (not bools) in range. Raises ArgumentError naming the setting and the range."""
    for name, value in settings.items():
        if value is None:
            continue
        if name in _UNIT_RANGES:
            lo, hi, lo_in, hi_in = _UNIT_RANGES[name]
            ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
                value, bool
            )
            v = float(value) if ok else float("nan")  # type: ignore[arg-type]
            ok = ok and (lo <= v if lo_in else lo < v) and (v <= hi if hi_in else v < hi)
            if not ok:
                rng = f"{'[' if lo_in else '('}{lo:g}, {hi:g}{']' if hi_in else ')'}"
                raise ArgumentError(f"{name} must be a number in {rng}, got {value!r}")
        elif name == "stability_score_offset":
            if isinstance(value, bool) or not np.isfinite(_as_float(value)):
                raise ArgumentError(f"{name} must be a finite number, got {value!r}")
        else:  # counts: points_per_side, points_per_batch, crop_n_layers, ...
            low = 0 if name in ("crop_n_layers", "min_mask_region_area") else 1
            whole = isinstance(value, (int, np.integer)) or (
                isinstance(value, float) and value.is_integer()
            )
            if isinstance(value, bool) or not whole or int(value) < low:  # type: ignore[call-overload]
                raise ArgumentError(f"{name} must be an int >= {low}, got {value!r}")


def _as_float(value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return float("nan")
