"""Mask post-processing, one owner: low-res logits -> full-resolution logits, masks, stability
scores and boxes, for every backend (torch, ONNX Runtime) and the segment-everything generator.

The reference (Meta's ``Sam.postprocess_masks``) maps low-res logits ``(..., s, s)`` (s = S / 4,
S the model's input side) to the original ``(H, W)`` frame with two bilinear resizes
(``align_corners=False``): to the padded ``S x S`` input, a crop to the resized image
``(h, w)``, then to ``(H, W)``; a mask is ``logits > mask_threshold``.

Exactness contract (stated here once; every function below names which one it keeps):

- **exact**: bit for bit the float32 values of the reference's two resizes on CPU. Used where
  pixels right at a threshold are counted: segment everything's stability scores, masks and
  boxes. :func:`upsample_exact` runs torch's own kernel (on the rows / columns the crop keeps);
  :mod:`samkit.postprocess.kernel` reproduces that kernel's arithmetic in NumPy on any set of
  pixels, which lets :mod:`samkit.postprocess.exact` compute only the pixels near a threshold.
- **fast**: both resizes composed into one linear map per axis (:mod:`samkit.resample`),
  applied as banded matrix products (:func:`upsample_fast`, torch or NumPy). Equal to the exact
  values up to float rounding (~1e-6 of the logits' range), so a mask may differ from the
  reference only in a pixel whose logit is within rounding of the threshold. Used for prompted
  masks (predictors, the front, the ONNX Runtime backend, auto-annotation).
- The exported ONNX decoder graph keeps the two resizes (:func:`upsample_graph`), so ONNX
  Runtime's own bilinear kernel decides its float rounding.

Low-res decisions (the opt-in low-res filter) are not part of either contract: they choose
which masks to keep and are documented where they are used (:mod:`samkit.amg.lowres`).

Nothing here imports torch at import time; torch functions import it when called.
"""

from samkit.postprocess.reduce import (
    binarize,
    count_above,
    filter_stable,
    stability_from_counts,
    stability_score,
)
from samkit.postprocess.resize import (
    upsample_exact,
    upsample_fast,
    upsample_graph,
)

__all__ = [
    "binarize",
    "count_above",
    "filter_stable",
    "stability_from_counts",
    "stability_score",
    "upsample_exact",
    "upsample_fast",
    "upsample_graph",
]
