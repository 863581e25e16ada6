"""Mask geometry in pure NumPy / OpenCV: run-length encoding, boxes, small-region cleanup.

Conventions used throughout:

- A mask is a ``bool`` array of shape ``(H, W)`` (row = y, column = x); a batch is ``(N, H, W)``.
- RLE follows COCO: the mask is flattened in column-major (Fortran) order and ``counts`` alternate
  runs of 0s and 1s, starting with the number of 0s (which may be 0). An *uncompressed* RLE is
  ``{"size": [h, w], "counts": [int, ...]}``; a *compressed* one stores the counts as the COCO
  ASCII string (``{"size": [h, w], "counts": str}``), byte for byte what pycocotools writes.
- Boxes are XYXY in pixel indices with an *inclusive* max (``x2`` is the last column holding a
  pixel), as in Meta's ``batched_mask_to_box``; an empty mask gives ``[0, 0, 0, 0]``.

pycocotools is not needed by anything here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import cv2
import numpy as np

from samkit.errors import ArgumentError, SamkitError

__all__ = [
    "area_from_rle",
    "box_xyxy_to_xywh",
    "coco_rle",
    "coco_string_to_counts",
    "mask_to_box",
    "mask_to_rle",
    "masks_to_rle",
    "normalize_rle",
    "record_rle",
    "remove_small_regions",
    "rle_box",
    "rle_to_coco_string",
    "rle_to_mask",
]


def _as_bool_masks(masks: np.ndarray, name: str, ndim: int) -> np.ndarray:
    arr = np.asarray(masks)
    if arr.ndim != ndim:
        shape = "(H, W)" if ndim == 2 else "(N, H, W)"
        raise ArgumentError(f"{name} must have shape {shape}, got an array of shape {arr.shape}")
    if arr.dtype != bool:
        if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
            raise ArgumentError(f"{name} must be a bool or numeric array, got dtype {arr.dtype}")
        arr = arr != 0
    return arr


# --------------------------------------------------------------------------------------------
# Uncompressed RLE
# --------------------------------------------------------------------------------------------


def masks_to_rle(masks: np.ndarray) -> list[dict[str, Any]]:
    """Encode a batch of masks ``(N, H, W)`` (bool, or numeric with nonzero = True) as
    uncompressed COCO RLEs ``{"size": [H, W], "counts": [int, ...]}``.

    The change points of all masks are found in one vectorised pass over the column-major
    flattened batch; only the final per-mask split loops over N.
    """
    arr = _as_bool_masks(masks, "masks", 3)
    n, h, w = arr.shape
    flat = arr.transpose(0, 2, 1).reshape(n, h * w)  # Fortran order per mask
    if n == 0:
        return []
    if h * w == 0:
        return [{"size": [h, w], "counts": [0]} for _ in range(n)]
    rows, cols = np.nonzero(flat[:, 1:] != flat[:, :-1])
    splits = np.searchsorted(rows, np.arange(1, n))
    out: list[dict[str, Any]] = []
    for i, starts in enumerate(np.split(cols + 1, splits)):
        bounds = np.concatenate(([0], starts, [h * w]))
        counts = np.diff(bounds).tolist()
        if flat[i, 0]:
            counts.insert(0, 0)
        out.append({"size": [h, w], "counts": counts})
    return out


def mask_to_rle(mask: np.ndarray) -> dict[str, Any]:
    """Encode one mask ``(H, W)`` as an uncompressed COCO RLE (see :func:`masks_to_rle`)."""
    return masks_to_rle(_as_bool_masks(mask, "mask", 2)[None])[0]


def _rle_size(rle: Mapping[str, Any]) -> tuple[int, int]:
    if not isinstance(rle, Mapping) or "size" not in rle or "counts" not in rle:
        raise ArgumentError("rle must be a mapping with 'size' and 'counts' keys")
    size = rle["size"]
    if len(size) != 2 or any(int(s) != s or s < 0 for s in size):
        raise ArgumentError(f"rle['size'] must be [height, width] non-negative ints, got {size!r}")
    return int(size[0]), int(size[1])


def _rle_counts(rle: Mapping[str, Any]) -> np.ndarray:
    counts = rle["counts"]
    if isinstance(counts, (str, bytes)):
        return np.asarray(coco_string_to_counts(counts), dtype=np.int64)
    arr = np.asarray(counts, dtype=np.int64).reshape(-1)
    if arr.size and arr.min() < 0:
        raise ArgumentError("rle['counts'] must not contain negative run lengths")
    return arr


def rle_to_mask(rle: Mapping[str, Any]) -> np.ndarray:
    """Decode a COCO RLE (uncompressed counts list, or compressed ``str``/``bytes`` counts)
    into a ``bool`` mask of shape ``(h, w)`` in C order."""
    h, w = _rle_size(rle)
    counts = _rle_counts(rle)
    if int(counts.sum()) != h * w:
        raise ArgumentError(
            f"rle['counts'] sum to {int(counts.sum())} but size {h}x{w} needs {h * w} pixels"
        )
    values = np.arange(counts.size) % 2 == 1
    flat = np.repeat(values, counts)
    return flat.reshape(w, h).T.copy()


def area_from_rle(rle: Mapping[str, Any]) -> int:
    """Number of foreground pixels of a COCO RLE (compressed or uncompressed)."""
    _rle_size(rle)
    return int(_rle_counts(rle)[1::2].sum())


# --------------------------------------------------------------------------------------------
# COCO compressed string counts ("LEB128-like", 5 data bits per char, chars 48..111)
# --------------------------------------------------------------------------------------------

_MAX_CHARS = 12  # 12 groups of 5 bits: far beyond any real image (2**59 pixels)


def rle_to_coco_string(counts: Any) -> str:
    """Compress RLE ``counts`` (sequence of non-negative ints) into COCO's ASCII string.

    Same codec as pycocotools' ``rleToString``: from the fourth count on, each value is stored
    as the difference to the count two places before; each value is written in 5-bit groups,
    least significant first, bit 0x20 meaning "more follows", with the last group's bit 0x10
    acting as the sign, and every group offset by 48 into printable ASCII.
    """
    cnts = np.asarray(counts, dtype=np.int64).reshape(-1)
    if cnts.size and (cnts.min() < 0 or cnts.max() >= 1 << 58):
        raise ArgumentError("counts must be non-negative run lengths below 2**58")
    x = cnts.copy()
    x[3:] -= cnts[1:-2]
    shifts = 5 * np.arange(_MAX_CHARS, dtype=np.int64)
    groups = (x[:, None] >> shifts) & 0x1F  # (m, C) 5-bit groups
    rest = x[:, None] >> (shifts + 5)  # value left after emitting each group (arithmetic shift)
    more = np.where(groups & 0x10, rest != -1, rest != 0)
    # Number of chars per value: 1 + the index of the first group that ends the value.
    n_chars = np.argmin(more, axis=1) + 1
    keep = np.arange(_MAX_CHARS)[None, :] < n_chars[:, None]
    chars = groups | np.where(more, 0x20, 0)
    return (chars[keep] + 48).astype(np.uint8).tobytes().decode("ascii")


def coco_string_to_counts(s: str | bytes) -> list[int]:
    """Inverse of :func:`rle_to_coco_string`: COCO compressed counts -> list of run lengths."""
    raw = s.encode("ascii") if isinstance(s, str) else bytes(s)
    c = np.frombuffer(raw, dtype=np.uint8).astype(np.int64) - 48
    if c.size == 0:
        return []
    if c.min() < 0 or c.max() > 63:
        raise ArgumentError("compressed RLE counts contain characters outside '0'..'o'")
    ends = (c & 0x20) == 0
    if not ends[-1]:
        raise ArgumentError("compressed RLE counts end in the middle of a value")
    value_id = np.concatenate(([0], np.cumsum(ends)[:-1]))
    starts = np.flatnonzero(np.concatenate(([True], ends[:-1])))
    pos = np.arange(c.size) - starts[value_id]  # index of each group inside its value
    if pos.max() >= _MAX_CHARS:
        raise ArgumentError("compressed RLE counts hold a value too large to decode")
    x = np.zeros(int(ends.sum()), dtype=np.int64)
    np.add.at(x, value_id, (c & 0x1F) << (5 * pos))
    end_idx = np.flatnonzero(ends)
    negative = (c[end_idx] & 0x10) != 0
    x[negative] |= -1 << (5 * (pos[end_idx][negative] + 1))
    # Undo the delta coding: counts[i] = x[i] + counts[i - 2] for i > 2, two interleaved cumsums.
    cnts = x.copy()
    if cnts.size > 3:
        cnts[1::2] = np.cumsum(x[1::2])
        cnts[2::2] = np.cumsum(x[2::2])
    if cnts.size and cnts.min() < 0:
        raise ArgumentError("compressed RLE counts decode to negative run lengths")
    return cnts.tolist()


def coco_rle(mask: np.ndarray) -> dict[str, Any]:
    """Compressed, JSON-ready COCO RLE ``{"size": [h, w], "counts": str}`` of a mask ``(H, W)``;
    identical to ``pycocotools.mask.encode(np.asfortranarray(mask))`` with counts decoded."""
    rle = mask_to_rle(mask)
    return {"size": rle["size"], "counts": rle_to_coco_string(rle["counts"])}


# --------------------------------------------------------------------------------------------
# Boxes
# --------------------------------------------------------------------------------------------


def mask_to_box(masks: np.ndarray) -> np.ndarray:
    """Tight boxes around masks.

    Args:
        masks: ``(..., H, W)`` bool (or numeric, nonzero = True).

    Returns:
        ``(..., 4)`` int64 XYXY in pixel indices, inclusive max (``x2`` = last column with a
        pixel); ``[0, 0, 0, 0]`` for an empty mask. Same numbers as Meta's ``batched_mask_to_box``.
    """
    arr = np.asarray(masks)
    if arr.ndim < 2:
        raise ArgumentError(f"masks must have shape (..., H, W), got {arr.shape}")
    arr = arr.astype(bool, copy=False)
    lead, (h, w) = arr.shape[:-2], arr.shape[-2:]
    flat: np.ndarray = arr.reshape(-1, h, w)
    out = np.zeros((flat.shape[0], 4), dtype=np.int64)
    if flat.size:
        rows: np.ndarray = np.any(flat, axis=2)  # (N, H)
        cols: np.ndarray = np.any(flat, axis=1)  # (N, W)
        nonempty = np.any(rows, axis=1)
        out[:, 0] = np.argmax(cols, axis=1)
        out[:, 1] = np.argmax(rows, axis=1)
        out[:, 2] = w - 1 - np.argmax(cols[:, ::-1], axis=1)
        out[:, 3] = h - 1 - np.argmax(rows[:, ::-1], axis=1)
        out[~nonempty] = 0
    return out.reshape(*lead, 4)


def box_xyxy_to_xywh(boxes: np.ndarray) -> np.ndarray:
    """``(..., 4)`` XYXY -> ``(..., 4)`` XYWH with ``w = x2 - x1``, ``h = y2 - y1`` (Meta's
    convention; for inclusive-max mask boxes COCO's ``toBbox`` width is one more)."""
    arr = np.asarray(boxes)
    if arr.ndim < 1 or arr.shape[-1] != 4:
        raise ArgumentError(f"boxes must have shape (..., 4), got {arr.shape}")
    out = arr.copy()
    out[..., 2:] = arr[..., 2:] - arr[..., :2]
    return out


# --------------------------------------------------------------------------------------------
# Small-region cleanup
# --------------------------------------------------------------------------------------------


def remove_small_regions(
    mask: np.ndarray, area_thresh: float, mode: Literal["holes", "islands"]
) -> tuple[np.ndarray, bool]:
    """Fill small holes or drop small islands of a mask ``(H, W)``.

    Components are 8-connected (``cv2.connectedComponentsWithStats``); a component is small when
    its pixel count is ``< area_thresh``. ``"holes"`` fills small background components (the
    outer background counts as a hole too, as in Meta's version); ``"islands"`` removes small
    foreground components but keeps the largest one if all are small. Returns
    ``(mask (H, W) bool, changed)``; when nothing is small the input mask comes back unchanged.
    Same results as ``segment_anything.utils.amg.remove_small_regions``.
    """
    if mode not in ("holes", "islands"):
        raise ArgumentError(f"mode must be 'holes' or 'islands', got {mode!r}")
    arr = _as_bool_masks(mask, "mask", 2)
    fill_holes = mode == "holes"
    working = (arr ^ fill_holes).astype(np.uint8)
    n_labels, labels, stats, _ = cv2.connectedComponentsWithStats(working, connectivity=8)
    sizes = stats[1:, cv2.CC_STAT_AREA]
    small = np.flatnonzero(sizes < area_thresh) + 1
    if small.size == 0:
        return arr, False
    keep = np.zeros(n_labels, dtype=bool)
    if fill_holes:
        keep[0] = True  # label 0 of the inverted mask is the original foreground
        keep[small] = True
    else:
        keep[1:] = True
        keep[small] = False
        if not keep.any():
            keep[int(np.argmax(sizes)) + 1] = True
    return keep[labels], True


def normalize_rle(rle: Mapping[str, Any], hw: tuple[int, int], name: str = "rle") -> dict[str, Any]:
    """A COCO RLE (counts list, array or compressed string) -> ``{"size": [H, W], "counts":
    (K,) int64}``, checked against the image size."""
    if not isinstance(rle, Mapping) or "size" not in rle or "counts" not in rle:
        raise SamkitError(f"{name} must be a COCO RLE dict with 'size' and 'counts'")
    size = [int(v) for v in rle["size"]]
    if size != list(hw):
        raise SamkitError(f"{name} has size {size}, the image is {list(hw)}")
    counts = rle["counts"]
    if isinstance(counts, (str, bytes)):
        counts = coco_string_to_counts(counts)
    arr = np.asarray(counts, dtype=np.int64).reshape(-1)
    if (arr.size and arr.min() < 0) or int(arr.sum()) != hw[0] * hw[1]:
        raise SamkitError(
            f"{name} counts must be non-negative runs summing to {hw[0] * hw[1]} pixels"
        )
    return {"size": size, "counts": arr}


def rle_box(counts: np.ndarray, h: int) -> list[int]:
    """XYXY box (inclusive max; zeros when empty) of a column-major RLE of an image h tall."""
    ends = np.cumsum(counts)
    starts = ends - counts
    fg = (np.arange(len(counts)) % 2 == 1) & (counts > 0)
    if not fg.any():
        return [0, 0, 0, 0]
    first, last = starts[fg], ends[fg] - 1  # flat column-major pixel indices
    first_col, last_col = first // h, last // h
    # A run crossing into the next column covers row h - 1 of one column and row 0 of the next.
    spans = first_col != last_col
    y1 = np.where(spans, 0, first % h).min()
    y2 = np.where(spans, h - 1, last % h).max()
    return [int(first_col.min()), int(y1), int(last_col.max()), int(y2)]


def record_rle(segmentation: Any, hw: tuple[int, int]) -> dict[str, Any]:
    """A generator record's segmentation (COCO RLE, compressed or not, or an (H, W) binary
    mask) -> a COCO RLE for :class:`Results` (which checks it against ``hw``)."""
    if isinstance(segmentation, dict):
        return segmentation
    return mask_to_rle(np.asarray(segmentation, dtype=bool).reshape(hw))
