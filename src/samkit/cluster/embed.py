"""``samkit embed`` on a Ray cluster: encoder actors (the GPUs) -> writer actors -> the store.

Each writer actor opens the same :class:`~samkit.embeddings.EmbeddingStore` folder (shared
storage on a real cluster) and writes one ``.npz`` per image atomically, so a redone image
after an actor died replaces nothing but itself and a rerun skips what is stored.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from samkit.cluster.runtime import RayOptions, model_spec, ray_session, stage_args, watched_rows
from samkit.cluster.stages import EmbedWriteStage, EncodeStage

__all__ = ["embed_on_ray"]


def embed_on_ray(
    todo: list[tuple[Path, str]], front: Any, store: Any, ray: Any, progress: bool
) -> Iterator[tuple[str, str]]:
    """Encode ``todo`` ((path, image key) pairs) with ``front``'s model into ``store``;
    yields (path, error or "") as each image is stored."""
    from tqdm.auto import tqdm

    from samkit.embeddings import EmbeddingStore

    options = ray if isinstance(ray, RayOptions) else RayOptions.from_kwargs(dict(ray or {}))
    spec = model_spec(front, None)
    if not todo:
        return
    store_factory = functools.partial(
        EmbeddingStore, store.folder.parent, store.model_key, dtype=str(store.dtype), memory_items=0
    )
    with ray_session(options) as ray_mod:
        items = [{"path": str(p), "key": k, "error": ""} for p, k in todo]
        ds = ray_mod.data.from_items(items, override_num_blocks=len(items))
        cpus = options.cpus_per_actor
        ds = ds.map_batches(**stage_args(ray_mod, EncodeStage, options.encoder_actors,
                                         options.encode_batch, gpus=options.gpus_per_actor,
                                         cpus=cpus, spec=spec))  # fmt: skip
        ds = ds.map_batches(**stage_args(ray_mod, EmbedWriteStage, options.decoder_actors,
                                         options.decode_batch, cpus=cpus,
                                         store_factory=store_factory))  # fmt: skip
        with tqdm(total=len(items), unit="img", desc="embed (ray)", disable=not progress) as bar:
            for row in watched_rows(ds.iter_rows()):
                bar.update(1)  # stored (or reported)
                yield str(row["path"]), str(row.get("error") or "")
