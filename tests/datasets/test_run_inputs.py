"""Inputs of the long runs that used to give silent wrong results or hangs: a damaged embedding
store entry that ``samkit embed`` counted as stored, class names with gaps in a data.yaml, the
contradictory ``fast=True skip_covered=False``, and the one settings check every long run
shares."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from samkit.errors import ArgumentError
from shapes_data import make_shapes_dataset


# ---------------------------------------------------------------------------- embed store
@pytest.mark.parametrize("damage", ["flipped", "truncated", "swapped"])
def test_embed_repairs_damaged_store_entries(
    tmp_path: Path, tiny_checkpoint: Path, damage: str
) -> None:
    from samkit.embed import embed
    from samkit.embeddings import EmbeddingStore

    make_shapes_dataset(tmp_path / "ds", 3, size=(48, 64), seed=1)
    images = tmp_path / "ds" / "images"
    first = embed(images, str(tiny_checkpoint), tmp_path / "store", device="cpu", progress=False)
    assert first.encoded == 3
    folder = tmp_path / "store" / first.model_key
    keys = [EmbeddingStore.key(p) for p in sorted(images.glob("*.png"))]
    entry = folder / f"{keys[0]}.npz"
    before = np.load(entry)["features"].copy()
    data = bytearray(entry.read_bytes())
    if damage == "flipped":
        with np.load(entry) as z:  # flip bytes inside the stored features
            offset = bytes(data).index(z["features"].tobytes()[:64]) + 256
        data[offset : offset + 8] = bytes(b ^ 0x55 for b in data[offset : offset + 8])
        entry.write_bytes(bytes(data))
    elif damage == "truncated":
        entry.write_bytes(bytes(data[: len(data) // 2]))
    else:
        entry.write_bytes((folder / f"{keys[1]}.npz").read_bytes())
    again = embed(images, str(tiny_checkpoint), tmp_path / "store", device="cpu", progress=False)
    assert (again.skipped, again.repaired, again.encoded) == (2, 1, 1), again
    assert "1 damaged entries repaired" in str(again)
    store = EmbeddingStore(tmp_path / "store", first.model_key)
    assert store.check(keys[0]) is None
    np.testing.assert_allclose(np.load(entry)["features"], before, rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------- data.yaml
def test_class_names_with_gaps_keep_their_ids(tmp_path: Path) -> None:
    from samkit.datasets import open_dataset

    root = tmp_path / "ds"
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    import cv2

    cv2.imwrite(str(root / "images" / "a.png"), np.zeros((32, 32, 3), np.uint8))
    (root / "labels" / "a.txt").write_text("0 0.1 0.1 0.4 0.1 0.4 0.4\n2 0.5 0.5 0.9 0.5 0.9 0.9\n")
    (root / "data.yaml").write_text(f"path: {root}\nval: images\nnames:\n  0: a\n  2: c\n")
    ds = open_dataset(root / "data.yaml")
    assert [inst.category for inst in ds[0].instances] == ["a", "c"]
    assert ds.names[2] == "c"


# ---------------------------------------------------------------------------- everything
def test_fast_with_skip_covered_false_is_refused() -> None:
    from samkit.automatic import SamAutomaticMaskGenerator

    with pytest.raises(ArgumentError, match="skip_covered=False"):
        SamAutomaticMaskGenerator(object(), fast=True, skip_covered=False)


# ---------------------------------------------------------------------------- settings
@pytest.mark.parametrize(
    ("key", "value", "ok"),
    [
        ("batch", 1, True),
        ("batch", 0, False),
        ("batch", 2.5, False),
        ("batch", True, False),
        ("seed", 0, True),
        ("seed", -1, False),
        ("box_jitter", 0.1, True),
        ("box_jitter", math.inf, False),
        ("box_jitter", -0.1, False),
        ("lr", 0.0, False),
        ("lr", math.nan, False),
        ("val_fraction", 0.99, True),
        ("val_fraction", 1.0, False),
        ("mask_prompt", 1.0, True),
        ("max_images", None, True),
        ("unknown_key", "anything", True),
    ],
)
def test_one_settings_check_for_every_run(key: str, value: object, ok: bool) -> None:
    from samkit.run_checks import check_run_settings

    if ok:
        check_run_settings({key: value}, "val")
    else:
        with pytest.raises(ArgumentError, match=f"val: {key} must be"):
            check_run_settings({key: value}, "val")
