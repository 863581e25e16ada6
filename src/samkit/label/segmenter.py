"""The annotator's model side: cached embeddings, background encoding, click -> masks.

It runs on any :class:`~samkit.engine.Engine` (torch, ONNX Runtime, GrabCut) made by
:func:`samkit.entrance.load`, so a front's dtype and compile settings hold here too. The
engine decodes clicks against an explicit image state; a fork of it (same network, its own
current image) encodes images (requests and the background worker), each behind its own lock,
so a click is never queued behind a whole encoder pass of an image someone is not looking at
yet. Embeddings live in a
:class:`samkit.embeddings.EmbeddingStore` (memory LRU + one file per image on disk) keyed by the
image file's content hash; an image being encoded (by a request or by the background worker)
is encoded once, later askers wait for it. Decoding runs on the server from
the cached embedding (see the README's annotator section for the measurement behind that).
"""

from __future__ import annotations

import collections
import os
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from samkit.embeddings import EmbeddingStore
from samkit.errors import PromptError, SamkitError
from samkit.prompts import normalize_prompts

if TYPE_CHECKING:
    from samkit.engine import Engine

__all__ = ["Prediction", "Segmenter"]

ImageLoader = Callable[[], np.ndarray]


@dataclass(frozen=True)
class Prediction:
    """One decoder answer. masks (C, H, W) bool at the original size; scores (C,) float32
    (predicted IoU); low_res (C, s, s) float32 logits (a later ``mask_input``)."""

    id: str
    image_key: str
    masks: np.ndarray
    scores: np.ndarray
    low_res: np.ndarray


class Segmenter:
    """Encode-once / click-many over one engine, shared by all requests.

    Args:
        engine: decodes prompts; a fork of it encodes images (a
            :class:`~samkit.predictor.SamPredictor` is accepted and wrapped).
        store: where embeddings are kept (its keys: :meth:`EmbeddingStore.key` of the file).
        keep_predictions: recent predictions remembered for ``mask_input``.
    """

    def __init__(self, engine: Any, store: EmbeddingStore, keep_predictions: int = 256) -> None:
        from samkit.engine import as_engine, fork_engine

        self.engine: Engine = as_engine(engine)
        self.encoder: Engine = fork_engine(self.engine)
        self._encode_lock = threading.Lock()
        self.store = store
        self._store_lock = threading.Lock()  # EmbeddingStore is not thread-safe by itself
        self._decode_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._inflight: dict[str, threading.Event] = {}
        self._current: str | None = None
        self._predictions: collections.OrderedDict[str, Prediction] = collections.OrderedDict()
        self._keep = int(keep_predictions)
        self._queue: collections.deque[tuple[str, ImageLoader]] = collections.deque()
        self._wake = threading.Condition()
        self._closed = False
        self._worker: threading.Thread | None = None
        self._busy = False
        self.encodes = 0  # encoder passes run (for tests and the benchmark)
        self.quiet_s = 1.0  # background encodes wait this long after the last click
        self._activity = 0.0
        self._urgent: str | None = None

    @classmethod
    def from_checkpoint(
        cls,
        model: str | os.PathLike[str] | Any,
        cache_dir: str | os.PathLike[str] | None,
        device: str | None = None,
        memory_items: int = 16,
    ) -> Segmenter:
        """Build through :func:`samkit.entrance.load` from a checkpoint file, a model name,
        an ONNX export folder, ``"grabcut"`` or a front; embeddings under ``cache_dir`` (None,
        or an engine without embeddings such as GrabCut: memory only)."""
        from samkit.embeddings import model_key
        from samkit.entrance import load

        loaded = load(model, device=device or "")
        if not getattr(loaded.engine, "has_embedding", True):
            cache_dir = None  # GrabCut's "state" is the image itself: nothing worth a file
        store = EmbeddingStore(cache_dir, model_key(loaded), memory_items=memory_items)
        return cls(loaded.engine, store)

    @property
    def network(self) -> Any:
        """The torch network, or None (ONNX Runtime, GrabCut)."""
        return getattr(self.engine, "model", None)

    # ------------------------------------------------------------------ embeddings
    def _cached(self, key: str) -> Any:
        with self._store_lock:
            return self.store.get(key)

    def state(self, key: str, load: ImageLoader) -> Any:
        """The embedding of image ``key`` (an engine state): cached, or encoded now from
        ``load()`` ((H, W, 3) uint8 RGB)."""
        while True:
            state = self._cached(key)
            if state is not None:
                return state
            with self._state_lock:
                event = self._inflight.get(key)
                mine = event is None
                if mine:
                    event = self._inflight[key] = threading.Event()
            assert event is not None
            if not mine:
                event.wait()
                continue  # the other encoder put it in the cache (or failed: try ourselves)
            try:
                image = load()
                with self._encode_lock:
                    state = self.encoder.encode(image)
                    self.encoder.reset_image()
                    self.encodes += 1
                with self._store_lock:
                    self.store.put(key, state)
                return state
            finally:
                with self._state_lock:
                    self._inflight.pop(key, None)
                event.set()

    # ------------------------------------------------------------------ background
    def prefetch(self, items: Sequence[tuple[str, ImageLoader]]) -> None:
        """Encode these images in the background, in order, replacing earlier requests. The
        first (the image just opened) starts at once; the others wait until no click has been
        decoded for :attr:`quiet_s` seconds, so an encoder pass does not share the CPU with the
        first clicks on the new image."""
        with self._wake:
            self._activity = time.monotonic()
            self._urgent = items[0][0] if items else None
            self._queue.clear()
            self._queue.extend(items)
            self._busy = self._busy or bool(items)
            if self._worker is None:
                self._worker = threading.Thread(
                    target=self._work, name="samkit-label-encoder", daemon=True
                )
                self._worker.start()
            self._wake.notify()

    def _work(self) -> None:
        while True:
            with self._wake:
                self._busy = False
                self._wake.notify_all()
                while not self._closed:
                    if self._queue:
                        wait = self._activity + self.quiet_s - time.monotonic()
                        if self._queue[0][0] == self._urgent or wait <= 0:
                            break
                        self._wake.wait(wait)
                    else:
                        self._wake.wait()
                if self._closed:
                    return
                key, load = self._queue.popleft()
                self._busy = True
            try:
                self.state(key, load)
            except Exception:  # a bad image is reported when someone opens it
                continue

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until the background queue is done; False on timeout."""
        with self._wake:
            return self._wake.wait_for(lambda: not self._queue and not self._busy, timeout)

    def close(self) -> None:
        """Stop the background worker (after its current image)."""
        with self._wake:
            self._closed = True
            self._queue.clear()
            self._wake.notify_all()

    # ------------------------------------------------------------------ decoding
    def predict(
        self,
        key: str,
        load: ImageLoader,
        points: np.ndarray | None,
        labels: np.ndarray | None,
        box: np.ndarray | None,
        multimask: bool,
        mask_input: str | None = None,
        mask_index: int | None = None,
    ) -> Prediction:
        """Decode prompts in original-image pixels (points (K, 2) XY with labels (K,), box (4,)
        XYXY) against image ``key``; ``mask_input`` is the id of an earlier prediction on the
        same image whose candidate ``mask_index`` (default: best score) seeds the decoder."""
        logits = None
        if mask_input is not None:
            logits = self._mask_input(key, mask_input, mask_index)
        state = self.state(key, load)
        self._activity = time.monotonic()
        with self._decode_lock:
            masks, scores, low_res = self._decode(state, points, labels, box, logits, multimask)
        self._activity = time.monotonic()
        pred = Prediction(uuid.uuid4().hex[:16], key, masks, scores, low_res)
        with self._state_lock:
            self._predictions[pred.id] = pred
            while len(self._predictions) > self._keep:
                self._predictions.popitem(last=False)
        return pred

    def _decode(
        self,
        state: Any,
        points: np.ndarray | None,
        labels: np.ndarray | None,
        box: np.ndarray | None,
        logits: np.ndarray | None,
        multimask: bool,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One object's prompts against ``state`` -> masks (C, H, W) bool, scores (C,), low-res
        logits (C, s, s)."""
        hw = _original_size(state)
        if points is not None and labels is None:
            raise PromptError("points need labels")
        objects = normalize_prompts(
            hw,
            points=None if points is None else np.asarray(points, dtype=np.float64)[None],
            labels=None if labels is None else np.asarray(labels)[None],
            bboxes=None if box is None else np.asarray(box, dtype=np.float64).reshape(1, 4),
            masks=None if logits is None else np.asarray(logits, dtype=np.float32)[None],
            low_res=self.engine.low_res,
        )
        if not objects:
            raise PromptError("give points or a box")
        low, scores = self.engine.decode(objects, multimask, state=state)
        channels = low.shape[1]
        masks = self.engine.upscale(low.reshape(-1, 1, *low.shape[-2:]), state=state)
        return masks.reshape(channels, *masks.shape[-2:]), scores[0], low[0]

    def _mask_input(self, key: str, pred_id: str, index: int | None) -> np.ndarray:
        with self._state_lock:
            prev = self._predictions.get(pred_id)
        if prev is None or prev.image_key != key:
            raise PromptError(f"mask_input: no recent prediction {pred_id!r} on this image")
        if index is None:
            index = int(np.argmax(prev.scores))
        if not 0 <= index < len(prev.scores):
            raise PromptError(f"mask_index: must be in [0, {len(prev.scores)}), got {index}")
        return prev.low_res[index : index + 1]


def _original_size(state: Any) -> tuple[int, int]:
    """(H, W) of the image a state encodes (an image array for GrabCut)."""
    if isinstance(state, np.ndarray):
        return int(state.shape[0]), int(state.shape[1])
    size = getattr(state, "original_size", None)
    if size is None:
        raise SamkitError(f"not an image state: {type(state).__name__}")
    return int(size[0]), int(size[1])
