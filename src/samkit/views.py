"""Ultralytics-style views of a :class:`~samkit.results.Results`: ``r.masks`` and ``r.boxes``.

Code written for Ultralytics reads ``r.masks.data`` (a torch tensor), ``r.masks.xy``,
``r.boxes.xyxy``, ``r.boxes.conf`` ... These views give it the same names, shapes and types
while the Results keeps its own storage (a dense NumPy stack, or per-mask RLEs for segment
everything). ``data`` and every box array are torch tensors on the Results' ``device``
(the model's device on the torch backend) and NumPy arrays when the Results is on no device
(``r.numpy()``, or torch is not installed). Nothing is converted until it is read: ``len``,
indexing, ``shape``, ``xy`` and ``orig_shape`` of an RLE-held Results never build the
(N, H, W) stack; ``data`` and ``np.asarray(view)`` do.

``np.asarray(r.masks)`` is the (N, H, W) bool stack and ``np.asarray(r.boxes)`` the (N, 4)
int64 XYXY boxes (inclusive max), as ``r.masks`` / ``r.boxes`` were before these views.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

import numpy as np

# a samkit.results.Results (not imported: results.py imports this module)
Results = Any

__all__ = ["Boxes", "Masks", "to_device"]


def to_device(array: np.ndarray, device: str | None) -> Any:
    """``array`` as a torch tensor on ``device`` (shared memory on the CPU), or unchanged when
    ``device`` is None."""
    if device is None:
        return array
    import torch

    tensor = torch.from_numpy(np.ascontiguousarray(array))
    return tensor if device == "cpu" else tensor.to(device)


class _View:
    """What both views share: the Results they read, device moves, length and indexing."""

    def __init__(self, results: Results) -> None:
        self._results = results

    @property
    def orig_shape(self) -> tuple[int, int]:
        """(H, W) of the original image."""
        return self._results.orig_shape

    def __len__(self) -> int:
        return len(self._results)

    def __getitem__(self, index: Any) -> Any:
        """The selected masks / boxes as a view of the same kind (an integer keeps one)."""
        return type(self)(self._results[index])

    def __iter__(self) -> Any:
        for i in range(len(self)):
            yield self[i]

    def cpu(self) -> Any:
        """The same view with torch tensors on the CPU."""
        return type(self)(self._results.cpu())

    def numpy(self) -> Any:
        """The same view with NumPy arrays."""
        return type(self)(self._results.numpy())

    def cuda(self) -> Any:
        """The same view with torch tensors on the current CUDA device."""
        return type(self)(self._results.cuda())

    def to(self, device: Any) -> Any:
        """The same view with torch tensors on ``device``."""
        return type(self)(self._results.to(device))

    def __repr__(self) -> str:
        kind = "numpy" if self._results.device is None else f"torch on {self._results.device}"
        return f"{type(self).__name__}({len(self)}, orig_shape={self.orig_shape}, {kind})"


class Masks(_View):
    """The masks of a Results, as Ultralytics' ``Results.masks``.

    Attributes:
        data: (N, H, W) bool, torch tensor (or NumPy array, see the module docstring) at the
            original resolution (as Ultralytics' SAM gives with ``retina_masks``).
        shape: (N, H, W), known without decoding RLEs.
        xy / xyn: per mask one (K, 2) float32 polygon in pixels / normalised to [0, 1]; a mask
            of several parts is joined into one polygon (as Ultralytics' default); empty
            masks give (0, 2).
    """

    @cached_property
    def data(self) -> Any:
        return to_device(self._results.dense_masks(), self._results.device)

    @property
    def shape(self) -> tuple[int, int, int]:
        return (len(self), *self.orig_shape)

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        arr = self._results.dense_masks()
        return arr if dtype is None else arr.astype(dtype)

    @cached_property
    def xy(self) -> list[np.ndarray]:
        from samkit.polygons import mask_to_polygons

        out = []
        for mask in self._results.iter_masks():
            parts = mask_to_polygons(mask, mode="merge")
            out.append(parts[0].astype(np.float32) if parts else np.zeros((0, 2), np.float32))
        return out

    @property
    def xyn(self) -> list[np.ndarray]:
        h, w = self.orig_shape
        scale = np.array([w, h], dtype=np.float32)
        return [p / scale for p in self.xy]


class Boxes(_View):
    """The boxes of a Results, as Ultralytics' ``Results.boxes``: one per mask, from the mask.

    Attributes:
        data: (N, 6) float32 ``[x1, y1, x2, y2, conf, cls]``; XYXY in original-image pixels
            with an inclusive max (a one-pixel mask at (x, y) is ``[x, y, x, y]``, as
            Ultralytics' SAM); conf the predicted IoU; cls the class id (0 unless assigned).
        xyxy (N, 4), conf (N,), cls (N,), xywh (N, 4) centre / size, xyxyn / xywhn divided
        by the image size; id None (no tracking); is_track False.
    """

    is_track = False
    id = None

    def _numpy(self) -> np.ndarray:
        r = self._results
        xyxy = r.xyxy.astype(np.float32)
        return np.column_stack([xyxy, r.scores.astype(np.float32), r.cls.astype(np.float32)])

    def _out(self, array: np.ndarray) -> Any:
        return to_device(array, self._results.device)

    @cached_property
    def data(self) -> Any:
        return self._out(self._numpy().reshape(-1, 6))

    @property
    def shape(self) -> tuple[int, int]:
        return (len(self), 6)

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        arr = self._results.xyxy
        return arr if dtype is None else arr.astype(dtype)

    @property
    def xyxy(self) -> Any:
        return self.data[:, :4]

    @property
    def conf(self) -> Any:
        return self.data[:, 4]

    @property
    def cls(self) -> Any:
        return self.data[:, 5]

    def _xywh(self) -> np.ndarray:
        b = self._results.xyxy.astype(np.float32).reshape(-1, 4)
        return np.column_stack([(b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2,
                                b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]])  # fmt: skip

    def _scale(self) -> np.ndarray:
        h, w = self.orig_shape
        return np.array([w, h, w, h], dtype=np.float32)

    @cached_property
    def xywh(self) -> Any:
        return self._out(self._xywh())

    @cached_property
    def xyxyn(self) -> Any:
        return self._out(self._results.xyxy.astype(np.float32).reshape(-1, 4) / self._scale())

    @cached_property
    def xywhn(self) -> Any:
        return self._out(self._xywh() / self._scale())
