"""The click rules of the point protocols, in pure NumPy / OpenCV.

- :func:`interior_point`: the interior-most pixel of a mask, the maximum of its Euclidean
  distance transform to the nearest background pixel, the image border counting as background
  (RITM pads the mask with a zero border); ties go to the lowest row-major index
  (``y * W + x``). This is the ``point`` protocol's click and every click of ``clicks``.
- :func:`centroid`: the mean ``(x, y)`` of the mask's pixels (EdgeSAM's "center" point; it can
  fall outside the mask, e.g. in a ring's hole, as in their protocol).
- :func:`next_click`: RITM / SimpleClick's next click after a prediction: the false-negative
  region (object pixels predicted as background) and the false-positive region (background
  predicted as object) are compared by their interior depth (the maximum of each region's
  distance transform); the click goes to the interior-most point of the deeper one, positive
  (label 1) for the false negatives, negative (label 0) for the false positives; at equal depth
  it is negative, as in RITM's ``Clicker`` (``is_positive = fn_max_dist > fp_max_dist``).

Coordinates are ``(x, y)`` pixel indices of the original image (the centre of pixel
``(row y, column x)``, as SAM's point prompts read them).
"""

from __future__ import annotations

import cv2
import numpy as np

from samkit.errors import ArgumentError

__all__ = ["Click", "centroid", "distance_to_background", "interior_point", "next_click"]

Click = tuple[float, float, int]  # x, y, label (1 positive, 0 negative)


def distance_to_background(mask: np.ndarray) -> np.ndarray:
    """Euclidean distance ``(H, W)`` float32 of each mask pixel to the nearest pixel outside the
    mask or outside the image (0 outside the mask). Exact: OpenCV's precise L2 transform works
    on integer squared distances, so equal distances compare equal."""
    padded = np.pad(np.asarray(mask, dtype=np.uint8), 1)
    dist = cv2.distanceTransform(padded, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    return dist[1:-1, 1:-1]


def _argmax_point(dist: np.ndarray) -> tuple[float, float, float]:
    flat = int(np.argmax(dist))  # first maximum in row-major order = lowest index
    y, x = divmod(flat, dist.shape[1])
    return float(x), float(y), float(dist.reshape(-1)[flat])


def interior_point(mask: np.ndarray) -> tuple[float, float]:
    """The interior-most pixel ``(x, y)`` of a non-empty ``(H, W)`` mask (see module docs).

    Raises:
        ArgumentError: the mask is empty (a ``ValueError``).
    """
    m = np.asarray(mask, dtype=bool)
    if not m.any():
        raise ArgumentError(f"mask must have a pixel set for interior_point, got none of {m.shape}")
    x, y, _ = _argmax_point(distance_to_background(m))
    return x, y


def centroid(mask: np.ndarray) -> tuple[float, float]:
    """Mean ``(x, y)`` of the mask's pixels (float pixel indices); ArgumentError (a
    ``ValueError``) for an empty mask."""
    m = np.asarray(mask, dtype=bool)
    ys, xs = np.nonzero(m)
    if not len(xs):
        raise ArgumentError(f"mask must have a pixel set for centroid, got none of {m.shape}")
    return float(xs.mean()), float(ys.mean())


def next_click(pred: np.ndarray, gt: np.ndarray) -> Click | None:
    """The next corrective click for prediction ``pred`` of object ``gt`` (both ``(H, W)``
    bool): ``(x, y, label)``, or None when the prediction is exact."""
    p, g = np.asarray(pred, dtype=bool), np.asarray(gt, dtype=bool)
    fn, fp = g & ~p, p & ~g
    if not fn.any() and not fp.any():
        return None
    fn_x, fn_y, fn_depth = _argmax_point(distance_to_background(fn))
    fp_x, fp_y, fp_depth = _argmax_point(distance_to_background(fp))
    if fn_depth > fp_depth:
        return fn_x, fn_y, 1
    return fp_x, fp_y, 0
