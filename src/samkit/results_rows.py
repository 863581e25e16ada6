"""Ultralytics' per-object rows of a :class:`~samkit.results.Results`: ``summary()``,
``to_df()``, ``to_csv()``, ``verbose()`` and ``new()``, with the shapes Ultralytics' own
``Results`` gives (ultralytics.engine.results), so code written for it reads samkit's results.

``summary()`` is one dict per mask: ``name``, ``class``, ``confidence``, ``box``
(``{"x1", "y1", "x2", "y2"}``, original-image pixels, or divided by (W, H) with
``normalize``) and ``segments`` (``{"x": [...], "y": [...]}``, the mask's outline as in
``r.masks.xy``). Every method works on a Results without masks (an empty list, an empty
frame, ``"(no detections), "``). samkit's own per-image record (COCO RLEs) is
``Results.image_summary()``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar, cast

import numpy as np

__all__ = ["ResultRows"]

_R = TypeVar("_R", bound="ResultRows")

_POLARS_HINT = "to_df / to_csv need polars: pip install polars (or samkit[df])"


class ResultRows:
    """What :class:`~samkit.results.Results` adds for Ultralytics' row-wise readers."""

    def summary(self, normalize: bool = False, decimals: int = 5) -> list[dict[str, Any]]:
        """One dict per mask, as Ultralytics' ``Results.summary`` (see the module docstring);
        ``decimals`` rounds every number."""
        r = cast(Any, self)
        h, w = r.orig_shape if normalize else (1, 1)
        boxes = r.xyxy.astype(np.float64).reshape(-1, 4)
        outlines = r.masks.xy if len(r) else []
        rows = []
        for i, (cls, score) in enumerate(zip(r.cls, r.scores, strict=True)):
            class_id = int(cls)
            x1, y1, x2, y2 = (float(v) for v in boxes[i])
            poly = outlines[i].astype(np.float64)
            rows.append(
                {
                    "name": r.names.get(class_id, str(class_id)),
                    "class": class_id,
                    "confidence": round(float(score), decimals),
                    "box": _box(x1 / w, y1 / h, x2 / w, y2 / h, decimals),
                    "segments": {
                        "x": (poly[:, 0] / w).round(decimals).tolist(),
                        "y": (poly[:, 1] / h).round(decimals).tolist(),
                    },
                }
            )
        return rows

    def to_df(self, normalize: bool = False, decimals: int = 5) -> Any:
        """:meth:`summary` as a polars DataFrame (as Ultralytics; needs ``polars``)."""
        try:
            import polars as pl
        except ImportError:
            raise ImportError(_POLARS_HINT) from None
        return pl.DataFrame(cast(Any, self).summary(normalize=normalize, decimals=decimals))

    def to_csv(self, normalize: bool = False, decimals: int = 5) -> str:
        """:meth:`summary` as CSV text: one row per mask; the ``box`` and ``segments`` columns
        hold their dicts as text (as Ultralytics writes nested values)."""
        try:
            import polars as pl
        except ImportError:
            raise ImportError(_POLARS_HINT) from None
        df = cast(Any, self).to_df(normalize=normalize, decimals=decimals)
        nested = [c for c, t in df.schema.items() if isinstance(t, (pl.Struct, pl.List))]
        flat = df.with_columns(
            [pl.col(c).map_elements(repr, return_dtype=pl.String) for c in nested]
        )
        return str(flat.write_csv())

    def verbose(self) -> str:
        """Ultralytics' log text: the count per class name (``"3 objects, "``), or
        ``"(no detections), "``."""
        r = cast(Any, self)
        if len(r) == 0:
            return "(no detections), "
        counts = np.bincount(r.cls.astype(np.int64))
        return "".join(
            f"{n} {r.names.get(i, str(i))}{'s' * (n > 1)}, "
            for i, n in enumerate(counts.tolist())
            if n > 0
        )

    def new(self: _R) -> _R:
        """A Results of the same image (path, names, speed, frame, save_dir, device) without
        masks, as Ultralytics' ``Results.new``."""
        r = cast(Any, self)
        h, w = r.orig_shape
        empty = np.zeros(0, np.int64)
        return dataclasses.replace(
            r,
            mask_array=np.zeros((0, h, w), dtype=bool),
            rles=None,
            scores=np.zeros(0, np.float32),
            cls=empty,
            object_ids=empty,
            low_res_logits=None,
            stability_scores=None,
            speed=dict(r.speed),
            stats={},
        )


def _box(x1: float, y1: float, x2: float, y2: float, decimals: int) -> dict[str, float]:
    return {"x1": round(x1, decimals), "y1": round(y1, decimals),
            "x2": round(x2, decimals), "y2": round(y2, decimals)}  # fmt: skip
