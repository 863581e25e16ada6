"""User prompts -> one :class:`ObjectPrompt` per object, and objects -> decoder batches.

Every coordinate is in original-image pixels, ``(x, y)`` for points and XYXY for boxes.

=====================================  ======================================  ===========
argument                               shape                                   objects
=====================================  ======================================  ===========
``points``                             ``(2,)``  e.g. ``[900, 370]``           1 (1 point)
``points`` (+ ``labels`` all 1)        ``(K, 2)`` (+ ``(K,)``)                 K (1 each)
``points`` + ``labels`` with a 0       ``(K, 2)`` + ``(K,)``                   1 (K points)
``points`` + ``labels``                ``(N, K, 2)`` + ``(N, K)``              N (K each)
``points`` + ``labels``                list of N ``(K_i, 2)`` + N ``(K_i,)``   N (ragged)
``bboxes``                             ``(4,)``                                1
``bboxes``                             ``(N, 4)``                              N
``masks`` (binary, original size)      ``(H, W)`` / ``(N, H, W)``              1 / N
``masks`` (low-res logits)             ``(1, s, s)`` / ``(N, 1, s, s)``        1 / N
=====================================  ======================================  ===========

A flat ``(K, 2)`` list of positive points is K objects, one point each, as in Ultralytics
(``points=[[400, 370], [900, 370]], labels=[1, 1]`` gives 2 masks); several points for one
object are ``(1, K, 2)``. A flat list holding a negative point (label 0) is one object refined
by all its points (Ultralytics splits it into objects of one point, so the negative point
becomes an object of its own: its issue #20168); so is a flat positive list given with a
single box or mask, which then describes that one object.

Labels: 1 foreground (positive), 0 background (negative); omitted labels mean all positive.
``s`` is the decoder's low-res size (256 for every published model); logits come from an
earlier result's ``low_res_logits``. A mask is binary when its dtype is bool or integer, or
when its last two dimensions are the image's ``(H, W)`` and not ``(s, s)``; a float array
shaped ``(..., 1, s, s)`` is taken as logits.

Prompts of different kinds combine per object: N boxes with N point groups give N objects,
each with its box and its points (a single object on one side and N on the other is an error,
never a silent broadcast). Ragged point counts are decoded exactly: objects are grouped by
their number of points and each group is decoded in one batch (no padding points, which would
change the outputs).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from samkit.errors import PromptError
from samkit.families.geometry import Geometry, ResizeLongestPad
from samkit.validation import check_coordinate_range

__all__ = ["PROMPT_SHAPES", "ObjectPrompt", "group_objects", "normalize_prompts", "stack_objects"]

PROMPT_SHAPES = (
    "points (2,) = 1 object with 1 point; (K, 2) with labels all 1 = K objects of 1 point, "
    "with a 0 label = 1 object with K points; "
    "(N, K, 2) with labels (N, K) = N objects; a list of N (K_i, 2) lists with N (K_i,) label "
    "lists = N objects with ragged point counts. bboxes (4,) = 1 object, (N, 4) = N objects "
    "(XYXY). masks (H, W) / (N, H, W) binary at the image's size, or low-res logits "
    "(1, s, s) / (N, 1, s, s) from an earlier result"
)


@dataclass(frozen=True)
class ObjectPrompt:
    """The prompts of one object, in original-image pixels.

    points (K, 2) float64 XY and labels (K,) int64 (1 foreground, 0 background), or both None;
    box (4,) float64 XYXY or None; mask_logits (1, s, s) float32 low-res logits or None;
    mask (H, W) bool binary mask at the image's size (converted to logits by the front) or None.
    """

    points: np.ndarray | None = None
    labels: np.ndarray | None = None
    box: np.ndarray | None = None
    mask_logits: np.ndarray | None = None
    mask: np.ndarray | None = None

    @property
    def key(self) -> tuple[int, bool, bool]:
        """Objects with equal keys decode together: (number of points, has box, has mask)."""
        n = 0 if self.points is None else len(self.points)
        return n, self.box is not None, self.mask_logits is not None or self.mask is not None


def _to_numpy(value: Any) -> Any:
    """Torch tensors (and anything with ``.detach``) become NumPy arrays; others unchanged."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):
        return value.detach().cpu().numpy()
    return value


def _float_array(value: Any, name: str) -> np.ndarray:
    try:
        arr = np.asarray(_to_numpy(value), dtype=np.float64)
    except (ValueError, TypeError):
        raise PromptError(
            f"{name} could not be read as numbers; accepted: {PROMPT_SHAPES}"
        ) from None
    return check_coordinate_range(arr, name)


def _is_ragged(value: Any) -> bool:
    """True for a list of per-object point lists whose lengths differ."""
    value = _to_numpy(value)
    if isinstance(value, np.ndarray) or not isinstance(value, Sequence) or not value:
        return False
    first = _to_numpy(value[0])
    if isinstance(first, np.ndarray):
        nested = first.ndim == 2
    else:
        nested = (
            isinstance(first, Sequence)
            and bool(first)
            and isinstance(_to_numpy(first[0]), (Sequence, np.ndarray))
        )
    return bool(nested) and len({len(_to_numpy(v)) for v in value}) > 1


def _check_labels(labels: np.ndarray, name: str) -> np.ndarray:
    if not np.isin(labels, (0, 1)).all():
        raise PromptError(
            f"{name} must hold 1 (foreground) or 0 (background), got {np.unique(labels).tolist()}"
        )
    return labels.astype(np.int64)


def _point_groups(points: Any, labels: Any) -> list[tuple[np.ndarray, np.ndarray]]:
    """Points and labels -> [(coords (K_i, 2), labels (K_i,))] one per object."""
    if _is_ragged(points):
        if labels is None:
            label_list: list[Any] = [None] * len(points)
        elif not _is_ragged_like(labels, len(points)):
            raise PromptError(
                f"ragged points ({len(points)} objects) need labels as a list of {len(points)} "
                f"per-object label lists, got {labels!r}; accepted: {PROMPT_SHAPES}"
            )
        else:
            label_list = list(labels)
        groups = []
        for i, (p, lab) in enumerate(zip(points, label_list, strict=True)):
            groups.extend(_point_groups_regular(p, lab, f"points[{i}]", single=True))
        return groups
    return _point_groups_regular(points, labels, "points", single=False)


def _is_flat(points: Any) -> bool:
    """True for a regular ``(K, 2)`` point list (not ``(N, K, 2)``, not ragged)."""
    if _is_ragged(points):
        return False
    try:
        return np.asarray(_to_numpy(points), dtype=np.float64).ndim == 2
    except (ValueError, TypeError):
        return False


def _is_ragged_like(labels: Any, n: int) -> bool:
    labels = _to_numpy(labels)
    return isinstance(labels, Sequence) and not isinstance(labels, str) and len(labels) == n


def _point_groups_regular(
    points: Any, labels: Any, name: str, single: bool
) -> list[tuple[np.ndarray, np.ndarray]]:
    pts = _float_array(points, name)
    if pts.ndim == 1 and pts.shape == (2,):
        pts = pts[None]
    flat = not single and pts.ndim == 2
    if pts.ndim == 2 and pts.shape[1] == 2 and len(pts):
        pts = pts[None]  # one object
    elif single or pts.ndim != 3 or pts.shape[2] != 2 or pts.shape[1] == 0:
        raise PromptError(f"{name} has shape {pts.shape}; accepted: {PROMPT_SHAPES}")
    n, k = pts.shape[:2]
    label_name = "labels" if name == "points" else name.replace("points", "labels")
    if labels is None:
        labs = np.ones((n, k), dtype=np.int64)
    else:
        labs = _float_array(labels, label_name)
        if labs.size == n * k and labs.shape in ((), (k,), (n, k), (n * k,), (n, k, 1)):
            labs = labs.reshape(n, k)
        else:
            raise PromptError(
                f"{label_name} has shape {labs.shape} but {name} {pts.shape} needs "
                f"{(k,) if n == 1 else (n, k)} (one label per point); accepted: {PROMPT_SHAPES}"
            )
        if not np.equal(labs, np.round(labs)).all():
            raise PromptError(f"{label_name} must be integers 0 or 1, got {labs.tolist()}")
    labs = _check_labels(labs, label_name)
    if flat and k > 1 and (labs == 1).all():  # Ultralytics: a flat positive list = K objects
        return [(pts[0, i : i + 1], labs[0, i : i + 1]) for i in range(k)]
    return [(pts[i], labs[i]) for i in range(n)]


def _boxes(bboxes: Any) -> list[np.ndarray]:
    arr = _float_array(bboxes, "bboxes")
    if arr.shape == (4,):
        arr = arr[None]
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise PromptError(f"bboxes has shape {arr.shape}; accepted: {PROMPT_SHAPES}")
    bad = (arr[:, 2] < arr[:, 0]) | (arr[:, 3] < arr[:, 1])
    if bad.any():
        raise PromptError(
            f"bboxes must be XYXY with x2 >= x1 and y2 >= y1; box {int(np.argmax(bad))} is "
            f"{arr[int(np.argmax(bad))].tolist()}"
        )
    return list(arr)


def _masks(
    masks: Any, image_hw: tuple[int, int], low_res: int
) -> list[tuple[np.ndarray | None, np.ndarray | None]]:
    """-> [(binary (H, W) or None, logits (1, s, s) or None)] per object."""
    if hasattr(masks, "low_res_logits"):  # an earlier Results
        masks = masks.low_res_logits
        if masks is None:
            raise PromptError(
                "masks= was given a result without low-res logits (segment-everything result?)"
            )
    arr = np.asarray(_to_numpy(masks))
    h, w = image_hw
    binary_dtype = arr.dtype == bool or np.issubdtype(arr.dtype, np.integer)
    if not binary_dtype and arr.ndim in (3, 4) and arr.shape[-3:] == (1, low_res, low_res):
        logits = arr.astype(np.float32).reshape(-1, 1, low_res, low_res)
        if not np.isfinite(logits).all():
            raise PromptError("masks (low-res logits) contains NaN or infinite values")
        return [(None, m) for m in logits]
    if arr.ndim in (2, 3) and arr.shape[-2:] == (h, w):
        if not binary_dtype and not np.isin(arr, (0, 1)).all():
            raise PromptError(
                "masks at the image's size must be binary (bool, or 0/1 values); "
                "pass low-res logits as (N, 1, s, s) floats"
            )
        return [(m, None) for m in arr.reshape(-1, h, w).astype(bool)]
    raise PromptError(
        f"masks has shape {arr.shape} (dtype {arr.dtype}) for an image of {h}x{w}; accepted: "
        f"binary (H, W) = ({h}, {w}) or (N, {h}, {w}), or float logits (1, {low_res}, "
        f"{low_res}) or (N, 1, {low_res}, {low_res})"
    )


def normalize_prompts(
    image_hw: tuple[int, int],
    points: Any = None,
    labels: Any = None,
    bboxes: Any = None,
    masks: Any = None,
    low_res: int = 256,
) -> list[ObjectPrompt]:
    """User prompts -> one :class:`ObjectPrompt` per object (see the module docstring's table).

    Args:
        image_hw: (H, W) of the image the prompts refer to (binary masks must match it).
        points, labels, bboxes, masks: as in the table; None for absent.
        low_res: side of the decoder's low-res logits (``image_size // 4``).

    Returns:
        The objects in order; an empty list when no prompt is given.

    Raises:
        PromptError: a shape outside the table, labels not 0/1, or object counts that differ
            between prompt kinds.
    """
    if labels is not None and points is None:
        raise PromptError("labels were given without points")
    sides: list[tuple[str, list[Any]]] = []
    if points is not None:
        sides.append(("points", _point_groups(points, labels)))
    if bboxes is not None:
        sides.append(("bboxes", _boxes(bboxes)))
    if masks is not None:
        sides.append(("masks", _masks(masks, image_hw, low_res)))
    if not sides:
        return []
    counts = {name: len(items) for name, items in sides}
    others = {n for name, n in counts.items() if name != "points"}
    if "points" in counts and counts["points"] > 1 and others == {1} and _is_flat(points):
        # A flat positive list with one box / mask: all the points refine that one object.
        groups = dict(sides)["points"]
        joined = (np.concatenate([g[0] for g in groups]), np.concatenate([g[1] for g in groups]))
        sides = [(name, [joined] if name == "points" else items) for name, items in sides]
        counts["points"] = 1
    if len(set(counts.values())) > 1:
        detail = ", ".join(f"{name} describe {n} object(s)" for name, n in counts.items())
        raise PromptError(
            f"prompt kinds combine per object and must describe the same number of objects: "
            f"{detail}. For one point per box pass points of shape (N, 1, 2); {PROMPT_SHAPES}"
        )
    n = next(iter(counts.values()))
    if n == 0:
        raise PromptError("prompts describe zero objects")
    table = dict(sides)
    objects = []
    for i in range(n):
        pts, labs = table["points"][i] if "points" in table else (None, None)
        box = table["bboxes"][i] if "bboxes" in table else None
        mask, logits = table["masks"][i] if "masks" in table else (None, None)
        objects.append(ObjectPrompt(pts, labs, box, logits, mask))
    warn_outside(objects, image_hw)
    return objects


def warn_outside(objects: Sequence[ObjectPrompt], image_hw: tuple[int, int]) -> None:
    """Warn (UserWarning) about the first point or box of ``objects`` lying outside the image
    ``(H, W)``: SAM still answers, but rarely what was meant (often x and y swapped)."""
    h, w = image_hw
    size = f"the image ({w}x{h} pixels, width x height)"
    for i, obj in enumerate(objects):
        if obj.points is not None:
            real = obj.labels != -1
            pts = obj.points[real] if obj.labels is not None else obj.points
            out = (pts[:, 0] < 0) | (pts[:, 0] > w) | (pts[:, 1] < 0) | (pts[:, 1] > h)
            if out.any():
                x, y = pts[int(np.argmax(out))].tolist()
                warnings.warn(
                    f"points: object {i} has the point ({x:g}, {y:g}) outside {size}",
                    stacklevel=3,
                )
                return
        if obj.box is not None:
            x1, y1, x2, y2 = obj.box.tolist()
            if x1 < 0 or y1 < 0 or x2 > w or y2 > h:
                warnings.warn(
                    f"bboxes: box {i} [{x1:g}, {y1:g}, {x2:g}, {y2:g}] reaches outside {size}",
                    stacklevel=3,
                )
                return


def group_objects(objects: Sequence[ObjectPrompt], batch_size: int) -> Iterator[list[int]]:
    """Indexes of objects that decode together: equal :attr:`ObjectPrompt.key`, at most
    ``batch_size`` per batch, groups in order of first appearance."""
    if batch_size < 1:
        raise PromptError(f"batch size must be >= 1, got {batch_size}")
    groups: dict[tuple[int, bool, bool], list[int]] = {}
    for i, obj in enumerate(objects):
        groups.setdefault(obj.key, []).append(i)
    for indexes in groups.values():
        for start in range(0, len(indexes), batch_size):
            yield indexes[start : start + batch_size]


def stack_objects(
    objects: Sequence[ObjectPrompt], original_size: tuple[int, int], geometry: Geometry | int
) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    """Objects with equal keys -> prompt-frame NumPy prompts: coords (B, K, 2) float64, labels
    (B, K) int64, boxes (B, 4) float64 XYXY, mask logits (B, 1, s, s) float32 (None if absent).
    ``geometry``: the engine's (an int is SAM-1's resize-longest-and-pad at that side)."""
    if isinstance(geometry, int):
        geometry = ResizeLongestPad(geometry)
    first = objects[0]
    coords = labels = boxes = mask_in = None
    if first.points is not None:
        pts = np.stack([o.points for o in objects])  # type: ignore[misc]
        coords = geometry.apply_coords(pts, original_size)
        labels = np.stack([o.labels for o in objects])  # type: ignore[misc]
    if first.box is not None:
        b = np.stack([o.box for o in objects])  # type: ignore[misc]
        boxes = geometry.apply_boxes(b, original_size)
    if first.mask_logits is not None or first.mask is not None:
        logits = [
            o.mask_logits
            if o.mask_logits is not None
            else geometry.mask_prompt(o.mask, original_size)  # type: ignore[arg-type]
            for o in objects
        ]
        mask_in = np.stack(logits).astype(np.float32)
    return coords, labels, boxes, mask_in
