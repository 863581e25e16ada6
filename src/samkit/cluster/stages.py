"""The stages of samkit's cluster pipelines, as Ray Data callable classes (one actor each).

Rows are dicts of NumPy columns (Ray Data's ``"numpy"`` batch format). Images travel as paths
(each stage reads the file it needs); what varies in size per image (detections, an image
embedding) travels packed into one ``bytes`` column, so every row has the same columns.

Every stage catches a failure of one image, records it in the row's ``error`` column and lets
the next stages pass the row through: a bad image is reported and skipped, never fatal. A stage
that dies (its actor process killed) is restarted by Ray Data and its rows redone; every output
file is written atomically and is the same whichever actor writes it, so a redone image leaves
no trace.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from samkit.cluster.runtime import ModelSpec

__all__ = [
    "Batch",
    "DecodeWriteStage",
    "DetectStage",
    "EmbedWriteStage",
    "EncodeStage",
    "pack",
    "per_row",
    "unpack",
]

Batch = dict[str, np.ndarray]


def pack(**arrays: np.ndarray) -> bytes:
    """Arrays -> one ``.npz`` blob (no pickle)."""
    buf = io.BytesIO()
    np.savez(buf, **arrays)  # type: ignore[arg-type]
    return buf.getvalue()


def unpack(blob: bytes) -> dict[str, np.ndarray]:
    """The inverse of :func:`pack`."""
    with np.load(io.BytesIO(blob), allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def _rows(batch: Batch) -> list[dict[str, Any]]:
    n = len(next(iter(batch.values())))
    return [{k: v[i] for k, v in batch.items()} for i in range(n)]


def _columns(rows: Sequence[dict[str, Any]]) -> Batch:
    out: Batch = {}
    for key in rows[0]:
        values = [r[key] for r in rows]
        if isinstance(values[0], (bytes, str)):
            arr = np.empty(len(values), dtype=object)
            arr[:] = values
            out[key] = arr
        else:
            out[key] = np.asarray(values)
    return out


def per_row(
    batch: Batch,
    fn: Callable[[dict[str, Any]], dict[str, Any]],
    clock: str,
    defaults: dict[str, Any],
) -> Batch:
    """Apply ``fn`` to each row not already failed; time it into column ``clock``; a raised
    exception becomes the row's ``error``. ``defaults`` gives every output column a value
    first, so a failed row has the same columns as the others."""
    out = []
    for row in _rows(batch):
        start = time.perf_counter()
        for key, value in defaults.items():
            row.setdefault(key, value)
        if not row.get("error"):
            try:
                row = fn(row)
            except Exception as exc:  # one image's failure is reported, not fatal
                row["error"] = f"{type(exc).__name__}: {exc}" if not str(exc) else str(exc)
        row[clock] = time.perf_counter() - start
        out.append(row)
    return _columns(out)


def read_rgb(path: Any) -> np.ndarray:
    """The (H, W, 3) uint8 RGB image at ``path``."""
    from samkit.sources import read_image

    return read_image(str(path))


_read = read_rgb


class DetectStage:
    """Image path -> filtered detections (``dets``), the image size and boxes dropped.

    ``source_factory()`` builds the box source on the worker (a YOLO model loads once per
    actor); ``filters`` are :func:`~samkit.annotate.segment.filter_boxes`' keyword arguments.
    """

    def __init__(self, source_factory: Callable[[], Any], filters: dict[str, Any]) -> None:
        self.source = source_factory()
        self.filters = filters

    def __call__(self, batch: Batch) -> Batch:
        empty = pack(boxes=np.zeros((0, 4)), class_ids=np.zeros(0, np.int64), scores=np.zeros(0))
        defaults = {"height": 0, "width": 0, "dropped": 0, "dets": empty}
        return per_row(batch, self._one, "t_detect", defaults)

    def _one(self, row: dict[str, Any]) -> dict[str, Any]:
        from samkit.annotate.segment import filter_boxes

        image = _read(row["path"])
        h, w = image.shape[:2]
        found = self.source(image, str(row["rel"]))
        dets = filter_boxes(found, h, w, **self.filters)
        row.update(height=h, width=w, dropped=len(found) - len(dets))
        row["dets"] = pack(boxes=dets.boxes, class_ids=dets.class_ids, scores=dets.scores)
        return row


def state_blob(engine: Any) -> bytes:
    """The engine's current image state (embedding and sizes) as a blob."""
    from samkit.families.state import state_to_arrays

    return pack(**state_to_arrays(engine.get_state()))


def restore_state(engine: Any, blob: bytes) -> None:
    """Load a :func:`state_blob` into ``engine`` (no encoder pass)."""
    from samkit.families.state import state_from_arrays

    engine.set_state(state_from_arrays(unpack(blob)))


class EncodeStage:
    """Image path -> image embedding (``state``), on the encoder actors (the GPUs).

    Rows whose ``dets`` hold no box (auto-annotation) are passed on unencoded.
    """

    def __init__(self, spec: ModelSpec) -> None:
        self.engine = spec.build().engine

    def __call__(self, batch: Batch) -> Batch:
        return per_row(batch, self._one, "t_encode", {"state": b"", "height": 0, "width": 0})

    def _one(self, row: dict[str, Any]) -> dict[str, Any]:
        if "dets" in row and len(unpack(row["dets"])["boxes"]) == 0:
            return row
        image = _read(row["path"])
        self.engine.set_image(image)
        row["state"] = state_blob(self.engine)
        row["height"], row["width"] = image.shape[:2]
        return row


class DecodeWriteStage:
    """Embedding + boxes -> masks -> label files (auto-annotation), on CPU actors.

    ``writer_factory()`` builds the :class:`~samkit.annotate.writers.DatasetWriter`;
    ``names`` / ``coco_ids`` map class ids as the single-process run does.
    """

    def __init__(
        self,
        spec: ModelSpec,
        writer_factory: Callable[[], Any],
        names: dict[int, str],
        coco_ids: dict[int, int],
        min_area: int,
        batch: int | None,
    ) -> None:
        self.engine = spec.build().engine
        self.writer = writer_factory()
        self.names, self.coco_ids = dict(names), dict(coco_ids)
        self.min_area, self.batch = min_area, batch

    def __call__(self, batch: Batch) -> Batch:
        defaults = {"objects": 0, "classes": pack(class_ids=np.zeros(0, np.int64))}
        out = per_row(batch, self._one, "t_decode", defaults)
        for key in ("state", "dets"):  # the heavy columns end here
            out.pop(key, None)
        return out

    def _one(self, row: dict[str, Any]) -> dict[str, Any]:
        from samkit.annotate.detectors import Detections
        from samkit.annotate.segment import decode_boxes

        d = unpack(row["dets"])
        h, w = int(row["height"]), int(row["width"])
        dets = Detections(d["boxes"], d["class_ids"], d["scores"])
        masks = np.zeros((0, h, w), dtype=bool)
        if len(dets):
            restore_state(self.engine, row["state"])
            masks = decode_boxes(self.engine, dets.boxes, h, w, self.batch)
            keep = masks.reshape(len(masks), -1).sum(1) >= max(int(self.min_area), 1)
            row["dropped"] = int(row["dropped"]) + int((~keep).sum())
            dets, masks = dets.select(keep), masks[keep]
        names = dict(self.names)
        coco_ids = dict(self.coco_ids)
        for c in dets.class_ids.tolist():
            names.setdefault(int(c), str(c))
            coco_ids.setdefault(int(c), int(c) + 1)
        self.writer.write(
            str(row["rel"]), row["path"], h, w, dets.class_ids, dets.scores, masks, names, coco_ids
        )
        row["objects"] = len(dets)
        row["classes"] = pack(class_ids=dets.class_ids)
        return row


class EmbedWriteStage:
    """Embedding -> the embedding store on disk (``samkit embed``)."""

    def __init__(self, store_factory: Callable[[], Any]) -> None:
        self.store = store_factory()

    def __call__(self, batch: Batch) -> Batch:
        out = per_row(batch, self._one, "t_write", {})
        out.pop("state", None)
        return out

    def _one(self, row: dict[str, Any]) -> dict[str, Any]:
        from samkit.families.state import state_from_arrays

        self.store.put(str(row["key"]), state_from_arrays(unpack(row["state"])))
        return row
