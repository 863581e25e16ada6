"""A SAM 2 image state holds three feature levels: the embedding store writes all of them and
a restored state decodes exactly as the freshly encoded one."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from reference import make_image, randomize
from samkit.embeddings import EmbeddingStore, encode_cached
from samkit.prompts import ObjectPrompt
from samkit.sam2.build import build_sam2_from_config
from samkit.sam2.engine import HIGH_RES_KEYS, Sam2Engine
from samkit.sam2.variants import SAM2_VARIANTS


def test_store_round_trip_three_levels(tmp_path: Path) -> None:
    config = replace(SAM2_VARIANTS["sam2.1_hiera_tiny"].config, image_size=128)
    net = build_sam2_from_config(config)
    randomize(net, 2)
    engine = Sam2Engine(net)
    image = make_image(90, 140, seed=1)
    prompts = [ObjectPrompt(box=np.array([10.0, 10.0, 100.0, 80.0]))]

    store = EmbeddingStore(tmp_path, "sam2tiny128", memory_items=0)
    state = encode_cached(engine, store, image, store.key(image))
    fresh_low, fresh_iou = engine.decode(prompts, multimask_output=True)
    files = list((tmp_path / "sam2tiny128").glob("*.npz"))
    assert len(files) == 1
    with np.load(files[0]) as saved:
        shapes = {k: saved[k].shape for k in saved.files}
    assert shapes["features"] == (1, 256, 8, 8)
    assert shapes["extra." + HIGH_RES_KEYS[0]] == (1, 32, 32, 32)
    assert shapes["extra." + HIGH_RES_KEYS[1]] == (1, 64, 16, 16)

    engine.reset_image()
    reopened = EmbeddingStore(tmp_path, "sam2tiny128", memory_items=0)
    restored = encode_cached(engine, reopened, lambda: 1 / 0, store.key(image))  # a hit
    assert reopened.hits == 1 and restored is not state
    low, iou = engine.decode(prompts, multimask_output=True)
    assert np.array_equal(low, fresh_low) and np.array_equal(iou, fresh_iou)
