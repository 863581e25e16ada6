"""What a careful user hits with ``samkit val``: a bad image file is reported and skipped, bad
settings are refused with the key named before any work, a run that would measure nothing is
an error, and a swapped embedding-store entry is named and recomputed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from front_helpers import TINY_CONFIG, save_random_checkpoint
from samkit.errors import SamkitError
from shapes_data import make_shapes_dataset

pytest.importorskip("pycocotools")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_random_checkpoint(tmp_path_factory.mktemp("val") / "tiny.pt", TINY_CONFIG, seed=1)


def _yolo(root: Path, n: int = 3) -> Path:
    return make_shapes_dataset(root, n, seed=2, fmt="yolo")


@pytest.mark.parametrize("damage", ["truncated", "empty"])
def test_bad_image_in_a_yolo_dataset_is_named_and_skipped(
    tmp_path: Path, tiny: Path, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    from samkit.evaluation import val

    data = _yolo(tmp_path / "ds")
    bad = tmp_path / "ds" / "images" / "shapes_001.png"
    content = bad.read_bytes()
    bad.write_bytes(content[: len(content) // 2] if damage == "truncated" else b"")
    result = val(tiny, data, protocols="box", device="cpu", save=False, plots=False,
                 verbose=False)  # fmt: skip
    problems = [p for p in result.dataset["problems"] if "shapes_001" in p["file"]]
    assert problems, result.dataset["problems"]
    assert "shapes_001.png" in problems[0]["message"]
    assert any("shapes_001.png" in r.getMessage() for r in caplog.records)
    measured = {row.image for row in result.instances}
    assert len(measured) == 2 and not any("shapes_001" in str(i) for i in measured)


@pytest.mark.parametrize(
    ("args", "key"),
    [
        (["batch=-1"], "batch"),
        (["batch=0"], "batch"),
        (["max_images=-1"], "max_images"),
        (["max_images=0"], "max_images"),
        (["box_jitter=inf"], "box_jitter"),
        (["seed=-1"], "seed"),
    ],
)
def test_bad_settings_are_usage_errors_naming_the_key(
    tmp_path: Path, args: list[str], key: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from samkit.cli import main

    data = _yolo(tmp_path / "ds", 1)
    assert main(["val", f"data={data}", "device=cpu", "progress=false", *args]) == 2
    err = capsys.readouterr().err
    assert f"{key} must be" in err, err


def test_python_api_refuses_the_same_settings(tiny: Path, tmp_path: Path) -> None:
    from samkit.evaluation import val

    data = _yolo(tmp_path / "ds", 1)
    for options, key in (
        ({"batch": -1}, "batch"),
        ({"box_jitter": float("inf")}, "box_jitter"),
        ({"max_images": -1}, "max_images"),
        ({"seed": -1}, "seed"),
    ):
        with pytest.raises(SamkitError, match=f"{key} must be"):
            val(tiny, data, protocols="box", save=False, verbose=False, **options)


def test_coco_file_without_images_is_an_error(tmp_path: Path, tiny: Path) -> None:
    from samkit.cli import main

    path = tmp_path / "empty.json"
    path.write_text(json.dumps({"images": [], "annotations": [], "categories": []}))
    code = main(["val", f"model={tiny}", f"data={path}", "device=cpu", "progress=false",
                 f"project={tmp_path}"])  # fmt: skip
    assert code != 0
    assert not (tmp_path / "val" / "metrics.json").exists()


def test_swapped_store_entry_is_named_and_recomputed(
    tmp_path: Path, tiny: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from samkit.embeddings import EmbeddingStore
    from samkit.evaluation import val

    data = make_shapes_dataset(tmp_path / "ds", 2, seed=4)
    common = dict(protocols="box", device="cpu", cache=tmp_path / "store", save=False,
                  plots=False, verbose=False)  # fmt: skip
    alone = val(tiny, data, **common)
    (folder,) = list((tmp_path / "store").iterdir())
    keys = [EmbeddingStore.key(tmp_path / "ds" / "images" / f"shapes_00{i}.png") for i in (0, 1)]
    target = folder / f"{keys[0]}.npz"
    shutil.copyfile(folder / f"{keys[1]}.npz", target)  # image 1's entry under image 0's key
    swapped = val(tiny, data, **common)
    assert any(target.name in r.getMessage() for r in caplog.records)
    assert swapped.metrics["box"]["miou"] == pytest.approx(alone.metrics["box"]["miou"])
    assert EmbeddingStore(tmp_path / "store", folder.name).check(keys[0]) is None  # repaired


def test_entry_without_key_of_another_size_names_the_expected_shape(tmp_path: Path) -> None:
    from samkit.embeddings import EmbeddingStore, StoredState, encode_cached

    class Engine:
        def __init__(self) -> None:
            self.encoded = 0

        def set_state(self, state: object) -> None:
            raise AssertionError("a wrong-sized entry must not be used")

        def set_image(self, image: np.ndarray) -> None:
            self.encoded += 1

        def get_state(self) -> StoredState:
            return StoredState(np.zeros((1, 4, 2, 2), np.float32), (30, 20), (16, 11))

    store = EmbeddingStore(tmp_path, "m")
    store.put("k", StoredState(np.zeros((1, 4, 2, 2), np.float32), (64, 64), (16, 16)))
    engine = Engine()
    encode_cached(engine, store, np.zeros((30, 20, 3), np.uint8), "k")
    assert engine.encoded == 1
    assert store.damaged and "expected (30, 20)" in store.damaged[0][1]
    assert store.damaged[0][0].endswith("k.npz")


def test_dataset_whose_every_image_is_unreadable_is_an_error(tmp_path: Path, tiny: Path) -> None:
    from samkit.evaluation import val

    data = _yolo(tmp_path / "ds", 2)
    for image in (tmp_path / "ds" / "images").glob("*.png"):
        image.write_bytes(b"")
    with pytest.raises(SamkitError, match="none of the 2 images"):
        val(tiny, data, protocols="box", device="cpu", save=False, verbose=False)
