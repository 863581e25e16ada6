"""The models of a val run: each checkpoint / name / export folder, SAM front or engine becomes a
:class:`Member` with a report label, the engine every protocol decodes through, and the
embedding store that saves encoder passes across protocols and val calls."""

from __future__ import annotations

import contextlib
import logging
import os
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from samkit.embeddings import EmbeddingStore, model_key
from samkit.errors import SamkitError

__all__ = ["Member", "members", "model_store", "resolve_model"]

logger = logging.getLogger("samkit")
_STORES: weakref.WeakKeyDictionary[Any, EmbeddingStore] = weakref.WeakKeyDictionary()


@dataclass
class Member:
    """One model of the run: a label for reports, its engine, its embedding store, and the
    :class:`~samkit.front.SamFront` (e.g. a :class:`~samkit.model.SAM`) when there is one
    (segment everything needs it)."""

    label: str
    engine: Any
    store: EmbeddingStore
    front: Any = None
    encode_s: float = 0.0
    decode_s: dict[str, float] = field(default_factory=dict)
    start: tuple[int, int] = (0, 0)  # the store's (hits, misses) when the run began

    def __post_init__(self) -> None:
        self.start = (self.store.hits, self.store.misses)


def model_label(model: Any, index: int) -> str:
    """The report label of a model: its file name, else ``model<index>``."""
    if isinstance(model, (str, os.PathLike)):
        return Path(model).name
    checkpoint = getattr(model, "checkpoint", None)
    if checkpoint:
        return Path(checkpoint).name
    return f"model{index}"


def resolve_model(item: Any, i: int, device: str | None, backend: str | None) -> tuple[Any, Any]:
    """``(front or None, engine)`` of one model, through :func:`samkit.entrance.load`: a
    checkpoint / name / export folder / ``"grabcut"`` becomes a
    :class:`~samkit.front.SamFront`; a front gives its ``engine``; an engine is used as is; a
    ``Sam`` network or a predictor gets an engine."""
    from samkit.entrance import load
    from samkit.front import SamFront

    try:
        if isinstance(item, (str, os.PathLike)):
            item = SamFront(item, device=device, backend=backend)
        if isinstance(item, SamFront):
            return item, item.engine
        if all(hasattr(item, a) for a in ("set_image", "decode", "upscale", "get_state")):
            return None, item  # an engine made elsewhere (e.g. a GrabCut engine), as is
        return None, load(item, device=device).engine
    except SamkitError as e:
        raise SamkitError(f"model[{i}]: {e}") from None


def members(model: Any, device: str | None, backend: str | None, cache: Any) -> list[Member]:
    """Models from ``model``: a path / name (comma-separated for several), a SAM, an engine,
    or a list of these."""
    items: list[Any]
    if isinstance(model, str):
        items = [m.strip() for m in model.split(",") if m.strip()]
    elif isinstance(model, (list, tuple)):
        items = list(model)
    else:
        items = [model]
    if not items:
        raise SamkitError("model must name at least one model")
    members, labels = [], set()
    for i, item in enumerate(items):
        label = model_label(item, i)
        while label in labels:
            label += "'"
        labels.add(label)
        front, engine = resolve_model(item, i, device, backend)
        members.append(Member(label, engine, model_store(front or engine, cache), front))
    return members


def model_store(front: Any, cache: Any) -> EmbeddingStore:
    """The model's embedding store: the given one, a disk store under ``cache``, or a memory
    store kept with the model object so later val calls reuse its embeddings."""
    if isinstance(cache, EmbeddingStore):
        return cache
    try:
        store = _STORES.get(front)
    except TypeError:
        store = None
    if store is None or (
        cache is not None and (store.folder is None or store.folder.parent != Path(cache))
    ):
        key = getattr(front, "key", None)
        if key is None and (hasattr(front, "model") or hasattr(front, "state_dict")):
            key = model_key(front)
        if key is None:  # an engine without weights to hash: memory only, for this object
            if cache is not None:
                logger.warning("cache=%s ignored for %s: no model key", cache, type(front).__name__)
            key, cache = f"engine{id(front)}", None
        store = EmbeddingStore(cache, str(key), memory_items=8)
        with contextlib.suppress(TypeError):
            _STORES[front] = store
    return store
