"""``model="grabcut"``: a weights-free engine, OpenCV's GrabCut seeded from the prompts.

GrabCut (Rother et al., 2004) fits colour models (Gaussian mixtures) to the foreground and
background and cuts the image graph between them; it is the classical baseline that interactive
segmentation papers compare against. It serves box, point and mask prompts behind the same
:class:`~samkit.engine.Engine` seam as SAM, so the front, the CLI, auto-annotation and
evaluation run with no download at all. It is not SAM: masks follow colour edges; it has no
image embedding and not the segment-everything capability
(:class:`~samkit.engine.EverythingOps`), so segment everything, embedding stores and the Ray
stages refuse it with a clear error.

Seeding, per object, on a crop around the prompts (downscaled to at most ``max_side`` pixels):

- a box: inside it probable foreground, a thin band around it probable background (boxes
  are often a pixel tight), further out background (as OpenCV's rectangle mode);
- points: foreground discs at positive points, background discs at negative ones; without a
  box, a square of ``point_reach`` x the image's short side around the positive points is
  probable foreground, the rest of the crop probable background, and only the connected
  parts holding a positive point are kept;
- a mask (binary, or logits from an earlier result): probable foreground where set.

Frames and logits as SAM's: the image resized to a long side of ``image_size`` (1024) sits at
the top-left of the model square, and "low-res logits" are (s, s) with s = 256 covering that
square (+10 inside the mask, -10 outside, area-resampled in between). GrabCut works at full
resolution, so :meth:`GrabCutEngine.upscale` gives back the exact full-resolution mask of logits
it produced for the current image (looked up by content) and resamples any other logits.
Scores are 1.0 for a non-empty mask and 0.0 for an empty one (GrabCut has no quality estimate);
``multimask_output`` repeats the one mask three times.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np

from samkit.errors import SamkitError
from samkit.families.geometry import ResizeLongestPad
from samkit.prompts import ObjectPrompt
from samkit.validation import check_image

__all__ = ["GRABCUT_NAMES", "GrabCutEngine", "is_grabcut"]

GRABCUT_NAMES = ("grabcut", "grabcut.pt")
_LOGIT = 10.0


def is_grabcut(model: Any) -> bool:
    """Whether ``model`` names the GrabCut engine (``"grabcut"``, any case)."""
    return isinstance(model, str) and model.strip().lower() in GRABCUT_NAMES


class GrabCutEngine:
    """:class:`~samkit.engine.Engine` over ``cv2.grabCut`` (see the module docstring).

    Args:
        iterations: GrabCut iterations per object.
        max_side: crops are downscaled to this long side before the cut (speed), and the
            mask is upscaled back.
        point_reach: without a box, the probable-foreground square around the positive points
            is this fraction of the image's short side (at least 32 pixels).
        decoder_batch: accepted for the protocol; objects are cut one at a time.
    """

    backend = "grabcut"
    mask_threshold = 0.0
    has_embedding = False  # its state is the image itself

    def __init__(
        self,
        iterations: int = 5,
        max_side: int = 512,
        point_reach: float = 0.25,
        decoder_batch: int = 64,
    ) -> None:
        if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
            raise SamkitError(f"iterations must be an int >= 1, got {iterations!r}")
        if isinstance(max_side, bool) or not isinstance(max_side, int) or max_side < 16:
            raise SamkitError(f"max_side must be an int >= 16, got {max_side!r}")
        if not 0 < float(point_reach) <= 1:
            raise SamkitError(f"point_reach must be in (0, 1], got {point_reach!r}")
        self.iterations = iterations
        self.max_side = max_side
        self.point_reach = float(point_reach)
        self._decoder_batch = int(decoder_batch)
        self.image_size = 1024
        self.geometry = ResizeLongestPad(self.image_size)
        self._image: np.ndarray | None = None
        self._exact: dict[bytes, np.ndarray] = {}  # logits digest -> packed full-size mask

    # ------------------------------------------------------------------ image
    @property
    def low_res(self) -> int:
        return int(self.geometry.low_res)

    @property
    def decoder_batch(self) -> int:
        return self._decoder_batch

    @property
    def is_image_set(self) -> bool:
        return self._image is not None

    def encode(self, image_rgb: np.ndarray) -> np.ndarray:
        """Keep (H, W, 3) uint8 RGB as the current image (GrabCut has no embedding)."""
        image = np.ascontiguousarray(check_image(image_rgb))
        self._image = image
        self._exact.clear()
        return image

    def set_image(self, image_rgb: np.ndarray) -> None:
        self.encode(image_rgb)

    def reset_image(self) -> None:
        self._image = None

    def get_state(self) -> np.ndarray:
        return self._require_image()

    def set_state(self, state: Any) -> None:
        self.encode(state)

    def sizes(self) -> tuple[tuple[int, int], tuple[int, int]]:
        h, w = self._require_image().shape[:2]
        return (h, w), (h, w)

    def fork(self) -> GrabCutEngine:
        """A twin engine with the same settings and its own current image."""
        return GrabCutEngine(self.iterations, self.max_side, self.point_reach, self._decoder_batch)

    def _use(self, state: Any) -> None:
        """Make ``state`` (an image) current unless it already is."""
        if state is not None and state is not self._image:
            self.encode(state)

    def _require_image(self) -> np.ndarray:
        if self._image is None:
            raise SamkitError("no image is set: call set_image(...) first")
        return self._image

    # ------------------------------------------------------------------ prompts
    def decode(
        self,
        objects: Sequence[ObjectPrompt],
        multimask_output: bool,
        decoder_batch: int | None = None,
        state: Any = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Objects (original-frame prompts) -> logits (B, C, s, s) float32 and scores (B, C)
        float32, s = the image's long side, C = 3 with ``multimask_output`` else 1; ``state``
        (an image from :meth:`encode`) becomes the current image first."""
        self._use(state)
        self._require_image()
        s, c = self.low_res, 3 if multimask_output else 1
        logits = np.empty((len(objects), c, s, s), dtype=np.float32)
        scores = np.zeros((len(objects), c), dtype=np.float32)
        for i, obj in enumerate(objects):
            mask = self.segment(obj)
            logits[i] = self._to_logits(mask)
            scores[i] = float(mask.any())
        return logits, scores

    def _to_logits(self, mask: np.ndarray) -> np.ndarray:
        """Full-size mask (H, W) -> SAM-style logits (s, s) float32; remembers the mask."""
        h, w = mask.shape
        s = self.low_res
        hh, ww = _scaled(h, w, s)
        small = cv2.resize(mask.astype(np.float32), (ww, hh), interpolation=cv2.INTER_AREA)
        out = np.full((s, s), -_LOGIT, dtype=np.float32)
        out[:hh, :ww] = (small * 2.0 - 1.0) * _LOGIT
        if len(self._exact) < 4096:
            self._exact[_digest(out)] = np.packbits(mask)
        return out

    def _to_mask(self, logits: np.ndarray) -> np.ndarray:
        """Logits (s, s) -> mask (H, W) bool: exact when this engine made them, else resampled."""
        h, w = self._require_image().shape[:2]
        packed = self._exact.get(_digest(logits))
        if packed is not None:
            return np.unpackbits(packed, count=h * w).reshape(h, w).astype(bool)
        hh, ww = _scaled(h, w, logits.shape[-1])
        crop = np.ascontiguousarray(logits[:hh, :ww], dtype=np.float32)
        return cv2.resize(crop, (w, h), interpolation=cv2.INTER_LINEAR) > self.mask_threshold

    def segment(self, obj: ObjectPrompt) -> np.ndarray:
        """One object's mask (H, W) bool on the current image."""
        image = self._require_image()
        h, w = image.shape[:2]
        seeds = self._seeds(obj, h, w)
        x0, y0, x1, y1 = _crop_box(seeds, h, w)
        crop_img, crop_seed = image[y0:y1, x0:x1], seeds[y0:y1, x0:x1]
        scale = min(1.0, self.max_side / max(crop_img.shape[:2]))
        if scale < 1.0:
            size = (
                max(1, round(crop_img.shape[1] * scale)),
                max(1, round(crop_img.shape[0] * scale)),
            )
            crop_img = cv2.resize(crop_img, size, interpolation=cv2.INTER_AREA)
            crop_seed = cv2.resize(crop_seed, size, interpolation=cv2.INTER_NEAREST)
        fg = _cut(crop_img, crop_seed, self.iterations)
        if scale < 1.0:
            fg = (
                cv2.resize(fg.astype(np.uint8), (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)
                > 0
            )
        mask = np.zeros((h, w), dtype=bool)
        mask[y0:y1, x0:x1] = fg
        if obj.box is None and obj.points is not None:
            mask = _parts_with_points(mask, obj)
        return mask

    def _seeds(self, obj: ObjectPrompt, h: int, w: int) -> np.ndarray:
        """GrabCut's label image (H, W) uint8 (GC_BGD / GC_FGD / GC_PR_BGD / GC_PR_FGD)."""
        seeds = np.full((h, w), cv2.GC_PR_BGD, dtype=np.uint8)
        prior = None
        if obj.mask is not None:
            prior = np.asarray(obj.mask, dtype=bool)
        elif obj.mask_logits is not None:
            prior = self._to_mask(np.asarray(obj.mask_logits, dtype=np.float32)[0])
        if obj.box is not None:
            x0, y0, x1, y1 = _clip_box(obj.box, h, w)
            # A band around the box is only probably background: boxes are often a pixel tight
            # (inclusive corners, detector jitter), and object colour among the certain
            # background samples would teach the background model the object.
            pad = max(2, round(0.05 * max(x1 - x0, y1 - y0)))
            seeds[:] = cv2.GC_BGD
            seeds[max(y0 - pad, 0) : y1 + pad, max(x0 - pad, 0) : x1 + pad] = cv2.GC_PR_BGD
            seeds[y0:y1, x0:x1] = cv2.GC_PR_FGD
            if prior is not None:
                seeds[y0:y1, x0:x1][~prior[y0:y1, x0:x1]] = cv2.GC_PR_BGD
        elif prior is not None:
            seeds[prior] = cv2.GC_PR_FGD
        if obj.points is not None and obj.labels is not None:
            radius = max(2, round(min(h, w) / 100))
            positive = obj.points[obj.labels == 1]
            if obj.box is None and prior is None and len(positive):
                reach = max(32, round(self.point_reach * min(h, w)))
                x0, y0 = np.floor(positive.min(axis=0)).astype(int) - reach
                x1, y1 = np.ceil(positive.max(axis=0)).astype(int) + reach
                seeds[max(y0, 0) : max(y1, 0), max(x0, 0) : max(x1, 0)] = cv2.GC_PR_FGD
            for (x, y), label in zip(obj.points.tolist(), obj.labels.tolist(), strict=True):
                if label in (0, 1) and 0 <= x < w and 0 <= y < h:
                    value = cv2.GC_FGD if label == 1 else cv2.GC_BGD
                    cv2.circle(seeds, (int(x), int(y)), radius, int(value), -1)
        return seeds

    # ------------------------------------------------------------------ post-processing
    def upscale(self, low_res_logits: np.ndarray, state: Any = None) -> np.ndarray:
        """Logits (B, 1, s, s) -> masks (B, H, W) bool at the image's size."""
        self._use(state)
        low = np.asarray(low_res_logits, dtype=np.float32)
        h, w = self._require_image().shape[:2]
        out = np.zeros((len(low), h, w), dtype=bool)
        for i, row in enumerate(low):
            out[i] = self._to_mask(row[0])
        return out


def _clip_box(box: np.ndarray, h: int, w: int) -> tuple[int, int, int, int]:
    x0, y0, x1, y1 = np.asarray(box, dtype=np.float64).tolist()
    xa, ya = min(max(int(np.floor(x0)), 0), w - 1), min(max(int(np.floor(y0)), 0), h - 1)
    xb, yb = min(max(int(np.ceil(x1)), xa + 1), w), min(max(int(np.ceil(y1)), ya + 1), h)
    return xa, ya, xb, yb


def _scaled(h: int, w: int, s: int) -> tuple[int, int]:
    """Size of an (h, w) image at long side ``s``, rounded half up as the SAM transforms do."""
    scale = s / max(h, w)
    return max(1, int(h * scale + 0.5)), max(1, int(w * scale + 0.5))


def _digest(logits: np.ndarray) -> bytes:
    return hashlib.blake2b(
        np.ascontiguousarray(logits, np.float32).tobytes(), digest_size=16
    ).digest()


def _crop_box(seeds: np.ndarray, h: int, w: int) -> tuple[int, int, int, int]:
    """The seeds' non-background extent plus a margin of background for the colour model."""
    ys, xs = np.nonzero(seeds != cv2.GC_BGD)
    if not len(ys):
        return 0, 0, w, h
    margin_y = max(8, (int(ys.max()) - int(ys.min())) // 4)
    margin_x = max(8, (int(xs.max()) - int(xs.min())) // 4)
    return (max(int(xs.min()) - margin_x, 0), max(int(ys.min()) - margin_y, 0),
            min(int(xs.max()) + 1 + margin_x, w), min(int(ys.max()) + 1 + margin_y, h))  # fmt: skip


def _cut(image: np.ndarray, seeds: np.ndarray, iterations: int) -> np.ndarray:
    """GrabCut on an RGB crop from a label image; foreground (h, w) bool. A crop without both
    labels (nothing to contrast) keeps its probable-foreground seeds as the answer."""
    fg_seed = np.isin(seeds, (cv2.GC_FGD, cv2.GC_PR_FGD))
    if fg_seed.all() or not fg_seed.any() or min(seeds.shape) < 2:
        return fg_seed
    labels = seeds.copy()
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    bgr = np.ascontiguousarray(image[:, :, ::-1])
    try:
        cv2.grabCut(bgr, labels, (0, 0, 0, 0), bgd, fgd, iterations, cv2.GC_INIT_WITH_MASK)
    except cv2.error:  # e.g. too few samples for a colour model: keep the seeds
        return fg_seed
    return np.isin(labels, (cv2.GC_FGD, cv2.GC_PR_FGD))


def _parts_with_points(mask: np.ndarray, obj: ObjectPrompt) -> np.ndarray:
    """Keep the connected parts of ``mask`` that hold a positive point."""
    if obj.points is None or obj.labels is None or not mask.any():
        return mask
    _, comp = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    h, w = mask.shape
    keep = {
        int(comp[int(y), int(x)])
        for (x, y), label in zip(obj.points.tolist(), obj.labels.tolist(), strict=True)
        if label == 1 and 0 <= x < w and 0 <= y < h
    } - {0}
    return np.isin(comp, list(keep)) if keep else mask
