"""Overlay drawing with OpenCV / NumPy: masks, boxes and labels on a BGR image."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from samkit.errors import ArgumentError

__all__ = ["color", "draw_overlay"]

# A fixed, high-contrast palette (BGR), cycled by object index.
_PALETTE = (
    (56, 56, 255), (151, 157, 255), (31, 112, 255), (29, 178, 255), (49, 210, 207),
    (10, 249, 72), (23, 204, 146), (134, 219, 61), (52, 147, 26), (187, 212, 0),
    (168, 153, 44), (255, 194, 0), (147, 69, 52), (255, 115, 100), (236, 24, 0),
    (255, 56, 132), (133, 0, 82), (255, 56, 203), (200, 149, 255), (199, 55, 255),
)  # fmt: skip


def color(index: int) -> tuple[int, int, int]:
    """BGR colour of object ``index``."""
    return _PALETTE[index % len(_PALETTE)]


def draw_overlay(
    image_bgr: np.ndarray,
    masks: np.ndarray | Sequence[np.ndarray] | None,
    boxes: np.ndarray | None = None,
    labels: Sequence[str] | None = None,
    *,
    alpha: float = 0.5,
    line_width: int | None = None,
    contours: bool = True,
) -> np.ndarray:
    """A copy of ``image_bgr`` (H, W, 3) uint8 with the objects drawn on it.

    masks (N, H, W) bool (an array, or any sequence of (H, W) bool masks: each is read once,
    so a lazily decoded sequence never needs the whole stack) are blended in with ``alpha``
    and outlined when ``contours``; boxes (N, 4) XYXY pixels are drawn as rectangles; labels
    (N,) are written above each box (or at the mask's top-left when no boxes are drawn).
    Returns (H, W, 3) uint8 BGR.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ArgumentError(f"alpha must be in [0, 1], got {alpha}")
    out = np.ascontiguousarray(image_bgr, dtype=np.uint8).copy()
    h, w = out.shape[:2]
    lw = line_width or max(1, round((h + w) / 2 * 0.003))
    n = 0 if masks is None else len(masks)
    anchors: list[tuple[int, int]] = []
    if masks is not None and n:
        layer = out.astype(np.float32)
        outlines = []
        for i in range(n):
            m = np.asarray(masks[i])
            if m.shape != (h, w):
                raise ArgumentError(f"masks must have shape (N, {h}, {w}), got a mask of {m.shape}")
            layer[m] = layer[m] * (1 - alpha) + np.asarray(color(i), np.float32) * alpha
            if contours:
                found, _ = cv2.findContours(
                    m.astype(np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE
                )
                outlines.append(found)
            if labels and boxes is None:
                anchors.append(_top_left(m))
        out = np.clip(layer + 0.5, 0, 255).astype(np.uint8)
        for i, found in enumerate(outlines):
            cv2.drawContours(out, found, -1, color(i), lw)
    if boxes is not None:
        for i, box in enumerate(np.asarray(boxes).reshape(-1, 4)):
            x1, y1, x2, y2 = (round(float(v)) for v in box)
            cv2.rectangle(out, (x1, y1), (x2, y2), color(i), lw, cv2.LINE_AA)
    if labels:
        anchors = _anchors(anchors, boxes, len(labels))
        for i, (text, (x, y)) in enumerate(zip(labels, anchors, strict=True)):
            _label(out, text, x, y, color(i), lw)
    return out


def _anchors(
    mask_corners: list[tuple[int, int]], boxes: np.ndarray | None, n: int
) -> list[tuple[int, int]]:
    """Where each of n labels goes: the box's top-left, else the mask's, else (0, 0)."""
    if boxes is not None:
        arr = np.asarray(boxes).reshape(-1, 4)
        return [(round(float(b[0])), round(float(b[1]))) for b in arr[:n]]
    return [mask_corners[i] if i < len(mask_corners) else (0, 0) for i in range(n)]


def _top_left(mask: np.ndarray) -> tuple[int, int]:
    """(min x, min y) of a (H, W) bool mask's pixels; (0, 0) when empty."""
    if not mask.any():
        return (0, 0)
    ys, xs = np.nonzero(mask)
    return (int(xs.min()), int(ys.min()))


def _label(img: np.ndarray, text: str, x: int, y: int, bgr: tuple[int, int, int], lw: int) -> None:
    scale = max(0.3, lw / 3)
    thick = max(1, lw - 1)
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
    top = y - th - base - 2 if y - th - base - 2 >= 0 else y
    cv2.rectangle(img, (x, top), (x + tw + 2, top + th + base + 2), bgr, -1)
    cv2.putText(
        img,
        text,
        (x + 1, top + th + 1),
        cv2.FONT_HERSHEY_SIMPLEX,
        scale,
        (255, 255, 255),
        thick,
        cv2.LINE_AA,
    )
