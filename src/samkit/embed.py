"""``samkit embed``: precompute image embeddings into an :class:`~samkit.embeddings.EmbeddingStore`.

The store is the one that ``samkit val`` (``cache=``), ``samkit train``, ``samkit label`` and
:func:`~samkit.embeddings.encode_cached` read: ``<store>/<model key>/<image key>.npz``, the image
key being the hash of the image file's bytes, so any later run over the same files with the same
model and precision skips the encoder. Images already in the store are skipped (resume); a bad
image is reported and skipped. ``engine="ray"`` spreads the encoder over a Ray cluster
(:mod:`samkit.cluster`).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from samkit.errors import SamkitError

__all__ = ["EmbedSummary", "embed"]

logger = logging.getLogger("samkit")


@dataclass
class EmbedSummary:
    """What an embed run did: images found, encoded now, already stored, failed."""

    images: int = 0
    encoded: int = 0
    skipped: int = 0
    errors: int = 0
    seconds: float = 0.0
    store: str = ""
    model_key: str = ""
    failures: list[dict[str, str]] = field(default_factory=list)

    def __str__(self) -> str:
        return (
            f"{self.images} images: {self.encoded} encoded, {self.skipped} already stored, "
            f"{self.errors} errors in {self.seconds:.1f}s -> {self.store}/{self.model_key}"
        )


def embed(
    source: Any,
    model: Any = "mobile_sam.pt",
    store: str | os.PathLike[str] = "embeddings",
    *,
    device: str | None = None,
    dtype: str = "float32",
    recursive: bool = False,
    engine: str = "local",
    ray: Any = None,
    progress: bool = True,
) -> EmbedSummary:
    """Encode every image of ``source`` (folder, file, glob or list) with ``model`` (a path, a
    name or a :class:`~samkit.SAM`) into the store at ``store``.

    dtype: storage precision on disk, ``"float32"`` (lossless) or ``"float16"`` (half size).
    engine: ``"local"`` or ``"ray"`` (``ray``: :class:`~samkit.cluster.RayOptions` or a dict).
    """
    from samkit.annotate.images import list_images
    from samkit.embeddings import EmbeddingStore, model_key
    from samkit.engine import require_embedding
    from samkit.entrance import load

    if engine not in ("local", "ray"):
        raise SamkitError(f"engine must be 'local' or 'ray', got {engine!r}")
    if Path(store).exists() and not Path(store).is_dir():
        raise SamkitError(f"store must be a folder, but {str(store)!r} is a file")
    front = load(model, device=device)
    require_embedding(front.engine, "samkit embed")
    key = model_key(front)
    db = EmbeddingStore(store, key, dtype=dtype, memory_items=0)
    _, images = list_images(source, recursive)
    summary = EmbedSummary(images=len(images), store=str(store), model_key=key)
    todo: list[tuple[Path, str]] = []
    for path, rel in images:
        try:
            image_key = db.key(path)
        except OSError as exc:
            _fail(summary, rel, f"cannot read: {exc}")
            continue
        if db.has(image_key):
            summary.skipped += 1
        else:
            todo.append((path, image_key))
    start = time.perf_counter()
    if engine == "ray":
        from samkit.cluster.embed import embed_on_ray

        for rel, error in embed_on_ray(todo, front, db, ray, progress):
            if error:
                _fail(summary, rel, error)
            else:
                summary.encoded += 1
    else:
        _embed_local(front, db, todo, summary, progress)
    summary.seconds = time.perf_counter() - start
    return summary


def _fail(summary: EmbedSummary, rel: str, message: str) -> None:
    from tqdm.auto import tqdm

    summary.errors += 1
    summary.failures.append({"image": rel, "error": message})
    tqdm.write(f"samkit: skipped {rel}: {message}")


def _embed_local(front: Any, db: Any, todo: list[tuple[Path, str]], summary: EmbedSummary,
                 progress: bool) -> None:  # fmt: skip
    from tqdm.auto import tqdm

    from samkit.errors import SourceError
    from samkit.sources import read_image

    engine = front.engine
    with tqdm(total=len(todo), unit="img", desc="embed", disable=not progress) as bar:
        for path, image_key in todo:
            try:
                engine.set_image(read_image(path))
            except (SourceError, ValueError) as exc:
                _fail(summary, str(path), str(exc))
            else:
                db.put(image_key, engine.get_state())
                summary.encoded += 1
            bar.update(1)  # stored (or reported)
