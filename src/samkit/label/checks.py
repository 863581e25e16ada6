"""Checks of the annotator's request bodies: JSON in, typed values out, or a
:class:`BadRequest` whose message names the field (``points[1]``, ``annotations[0].label``)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from samkit.errors import SamkitError
from samkit.masks import rle_to_mask

__all__ = ["BadRequest", "PredictRequest", "crowd_flags", "parse_annotations", "parse_predict"]


class BadRequest(SamkitError, ValueError):
    """A request body that does not fit the API (answered with HTTP 422)."""


@dataclass(frozen=True)
class PredictRequest:
    """Prompts in original-image pixels: points (K, 2) XY float with labels (K,) int (1
    positive, 0 negative), box (4,) XYXY, or None."""

    points: np.ndarray | None
    labels: np.ndarray | None
    box: np.ndarray | None
    multimask: bool
    mask_input: str | None
    mask_index: int | None


MAX_POINTS = 1000  # far beyond clicking; keeps the decoder's memory bounded
_PREDICT_KEYS = ("points", "labels", "box", "multimask", "mask_input", "mask_index")


def _number(value: Any, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise BadRequest(f"{field}: expected a finite number, got {value!r}")
    return float(value)


def _inside(x: float, y: float, width: int, height: int, field: str) -> None:
    if not (0 <= x <= width and 0 <= y <= height):
        raise BadRequest(
            f"{field}: ({x:g}, {y:g}) lies outside the image ({width} x {height} pixels)"
        )


def _check_keys(body: Any, allowed: Sequence[str], field: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise BadRequest(f"{field}: expected a JSON object, got {type(body).__name__}")
    unknown = [k for k in body if k not in allowed]
    if unknown:
        raise BadRequest(f"{field}: unknown field {unknown[0]!r} (expected {', '.join(allowed)})")
    return body


def _points(value: Any, width: int, height: int) -> np.ndarray:
    if not isinstance(value, list):
        raise BadRequest(f"points: expected a list of [x, y], got {type(value).__name__}")
    if len(value) > MAX_POINTS:
        raise BadRequest(f"points: at most {MAX_POINTS} points per request, got {len(value)}")
    out = np.zeros((len(value), 2), np.float64)
    for i, p in enumerate(value):
        if not isinstance(p, list) or len(p) != 2:
            raise BadRequest(f"points[{i}]: expected [x, y], got {p!r}")
        out[i] = [_number(p[0], f"points[{i}][0]"), _number(p[1], f"points[{i}][1]")]
        _inside(out[i, 0], out[i, 1], width, height, f"points[{i}]")
    return out


def _labels(value: Any, count: int) -> np.ndarray:
    if value is None:  # as in the Python API: every point is positive
        return np.ones(count, np.int64)
    if not isinstance(value, list) or len(value) != count:
        got = len(value) if isinstance(value, list) else type(value).__name__
        raise BadRequest(f"labels: expected {count} values (one per point), got {got}")
    for i, v in enumerate(value):
        if isinstance(v, bool) or v not in (0, 1):
            raise BadRequest(f"labels[{i}]: expected 1 (positive) or 0 (negative), got {v!r}")
    return np.asarray(value, np.int64)


def _box(value: Any, width: int, height: int) -> np.ndarray:
    if not isinstance(value, list) or len(value) != 4:
        raise BadRequest(f"box: expected [x1, y1, x2, y2] or null, got {value!r}")
    b = [_number(v, f"box[{i}]") for i, v in enumerate(value)]
    if b[2] < b[0] or b[3] < b[1]:
        raise BadRequest(f"box: expected x1 <= x2 and y1 <= y2, got {value!r}")
    _inside(b[0], b[1], width, height, "box")
    _inside(b[2], b[3], width, height, "box")
    return np.asarray(b, np.float64)


def parse_predict(body: Any, width: int, height: int) -> PredictRequest:
    """Check a predict body for an image of ``width`` x ``height`` pixels; ``labels`` left
    out means every point is positive (1)."""
    body = _check_keys(body, _PREDICT_KEYS, "body")
    points = labels = box = None
    if body.get("points") is not None:
        points = _points(body["points"], width, height)
        labels = _labels(body.get("labels"), len(points))
        if not len(points):
            points = labels = None
    elif body.get("labels"):
        raise BadRequest("labels: given without points")
    if body.get("box") is not None:
        box = _box(body["box"], width, height)
    if points is None and box is None:
        raise BadRequest("points: give at least one point, or a box")
    multimask = body.get("multimask", True)
    if not isinstance(multimask, bool):
        raise BadRequest(f"multimask: expected true or false, got {multimask!r}")
    mask_input = body.get("mask_input")
    if mask_input is not None and not isinstance(mask_input, str):
        raise BadRequest(
            f"mask_input: expected a prediction id (string) or null, got {mask_input!r}"
        )
    index = body.get("mask_index")
    if index is not None and (isinstance(index, bool) or not isinstance(index, int)):
        raise BadRequest(f"mask_index: expected an integer or null, got {index!r}")
    return PredictRequest(points, labels, box, multimask, mask_input, index)


def parse_annotations(
    body: Any, width: int, height: int, classes: Sequence[str]
) -> list[tuple[str, np.ndarray]]:
    """Check an annotations body: ``[{"label": name, "rle": {"size": [h, w], "counts": str},
    "crowd": bool (optional)}]`` -> ``[(label, mask (H, W) bool)]`` (crowd flags:
    :func:`crowd_flags`)."""
    if not isinstance(body, list):
        raise BadRequest(f"body: expected a list of objects, got {type(body).__name__}")
    out = []
    for i, item in enumerate(body):
        field = f"annotations[{i}]"
        item = _check_keys(item, ("label", "rle", "crowd"), field)
        if not isinstance(item.get("crowd", False), bool):
            raise BadRequest(f"{field}.crowd: expected true or false, got {item['crowd']!r}")
        label = item.get("label")
        if not isinstance(label, str) or label not in classes:
            raise BadRequest(f"{field}.label: expected one of {list(classes)}, got {label!r}")
        rle = item.get("rle")
        if not isinstance(rle, dict) or "size" not in rle or "counts" not in rle:
            raise BadRequest(f'{field}.rle: expected {{"size": [h, w], "counts": ...}}')
        if rle["size"] != [height, width]:
            raise BadRequest(
                f"{field}.rle.size: expected [{height}, {width}] (the image), got {rle['size']!r}"
            )
        try:
            mask = rle_to_mask(rle)
        except (ValueError, TypeError) as exc:
            raise BadRequest(f"{field}.rle.counts: {exc}") from None
        if not mask.any():
            raise BadRequest(f"{field}.rle: the mask is empty")
        out.append((label, mask))
    return out


def crowd_flags(body: list[dict[str, Any]]) -> list[bool]:
    """The ``crowd`` flag of each object of a body that :func:`parse_annotations` accepted."""
    return [bool(item.get("crowd", False)) for item in body]
