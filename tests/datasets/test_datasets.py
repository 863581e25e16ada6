"""Dataset readers (every format against the generator's truth), the COCO edge cases with their
documented counts, and the embedding store."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from front_helpers import TINY_CONFIG, save_random_checkpoint
from samkit.datasets import DatasetError, open_dataset
from samkit.embeddings import EmbeddingStore, StoredState, encode_cached, model_key
from samkit.errors import ArgumentError
from samkit.prompts import normalize_prompts
from shapes_data import FORMATS, edge_case_coco, load_truth, make_shapes_dataset


@pytest.mark.parametrize("fmt", FORMATS)
def test_formats_read_back_the_drawn_masks(tmp_path, fmt):
    data = make_shapes_dataset(tmp_path, 3, fmt=fmt, seed=3)
    ds = open_dataset(data)
    truth = load_truth(tmp_path)
    assert ds.format == fmt and len(ds) == 3 and not ds.problems
    assert ds.num_annotations == sum(len(v) for v in truth.values())
    for sample in ds:
        drawn = truth[Path(sample.name).stem]
        assert len(sample.instances) == len(drawn)
        assert sample.image().shape == (sample.height, sample.width, 3)
        for inst, (cat, mask) in zip(sample.instances, drawn, strict=True):
            if fmt in ("coco", "masks"):  # lossless formats
                np.testing.assert_array_equal(inst.mask, mask)
            else:  # polygons: holes filled; YOLO joins parts by a one-pixel bridge
                assert (inst.mask & mask).sum() == mask.sum()
                extra = int((inst.mask & ~mask).sum())
                if cat == "ring":
                    np.testing.assert_array_equal(inst.mask, _fill_holes(mask))
                elif cat == "pair" and fmt == "yolo":
                    assert 0 < extra <= 0.05 * mask.sum()
                else:
                    assert extra == 0
            if fmt != "masks":
                assert inst.category == cat
            ys, xs = np.nonzero(inst.mask)
            np.testing.assert_array_equal(inst.box, [xs.min(), ys.min(), xs.max(), ys.max()])


def _fill_holes(mask: np.ndarray) -> np.ndarray:
    import cv2

    outside = np.zeros((mask.shape[0] + 2, mask.shape[1] + 2), np.uint8)
    outside[1:-1, 1:-1] = mask
    cv2.floodFill(outside, None, (0, 0), 2)
    return outside[1:-1, 1:-1] != 2


def test_coco_edge_cases_give_the_documented_counts(tmp_path):
    from pycocotools import mask as mask_utils

    ds = open_dataset(edge_case_coco(tmp_path))
    assert (len(ds), ds.crowd, ds.num_annotations) == (2, 2, 3)  # missing.png dropped
    found = sorted(p.file.rsplit(":", 1)[-1] for p in ds.problems if ":annotation" in p.file)
    assert found == ["annotation 5", "annotation 6", "annotation 7"]
    missing = [p for p in ds.problems if p.file.endswith("missing.png")]
    assert len(ds.problems) == 4 and missing[0].message == "image file not found"
    a, b = ds[0], ds[1]
    assert [i.instance_id for i in a.instances] == ["1", "2"] and len(b.instances) == 1
    poly, rle = a.instances
    np.testing.assert_array_equal(poly.bbox, [10, 5, 30, 15])  # XYWH -> XYXY
    assert poly.area == 200 and rle.area == 200
    ref = mask_utils.decode(mask_utils.frPyObjects([[10, 5, 30, 5, 30, 15, 10, 15]], 40, 50))
    np.testing.assert_array_equal(poly.mask, ref[..., 0].astype(bool))
    ds_small = open_dataset(tmp_path / "instances.json", min_area=50)
    assert sum(len(s.instances) for s in ds_small) == 2 and ds_small.below_min_area == 1


def test_bad_data_argument_raises_clear_errors(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        open_dataset(tmp_path / "nope.json")
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(DatasetError, match=r"COCO \.json"):
        open_dataset(tmp_path / "x.txt")
    (tmp_path / "bad.json").write_text("[]")
    with pytest.raises(DatasetError, match="needs 'images'"):
        open_dataset(tmp_path / "bad.json")
    with pytest.raises(DatasetError, match="min_area"):
        open_dataset(tmp_path / "bad.json", min_area=-1)
    (tmp_path / "data.yaml").write_text("names: [a, b\n")  # unclosed list: not YAML
    with pytest.raises(DatasetError, match=r"data\.yaml: cannot read data\.yaml .*plain YAML"):
        open_dataset(tmp_path / "data.yaml")


def test_unreadable_mask_png_is_reported_once_by_file(tmp_path):
    data = make_shapes_dataset(tmp_path, 1, fmt="masks")
    files = sorted((tmp_path / "masks").rglob("*.png"))
    files[0].write_bytes(b"not a png")
    ds = open_dataset(data)
    assert len(ds[0].instances) == len(files) - 1  # decoding skips the broken file only
    assert [(p.file, p.message) for p in ds.problems] == [(str(files[0]), "not a readable PNG")]


def test_yolo_and_labelme_bad_rows_are_reported_and_skipped(tmp_path):
    data = make_shapes_dataset(tmp_path / "y", 1, fmt="yolo")
    label = tmp_path / "y" / "labels" / "shapes_000.txt"
    good = label.read_text().splitlines()
    label.write_text("\n".join([*good, "0 0.1 0.1 0.2 0.2", "1 0.5 0.5 1.7 0.5 0.6 0.6"]) + "\n")
    ds = open_dataset(data)
    assert len(ds[0].instances) == len(good) and len(ds.problems) == 2
    assert all(str(label) in p.file for p in ds.problems)
    folder = make_shapes_dataset(tmp_path / "l", 1, fmt="labelme")
    js = folder / "shapes_000.json"
    record = json.loads(js.read_text())
    record["shapes"].append({"label": "x", "points": [[1, 1], [2, 2]], "shape_type": "polygon"})
    js.write_text(json.dumps(record))
    ds = open_dataset(folder)
    assert len(ds.problems) == 1 and "needs >= 3" in ds.problems[0].message


def test_unlabelled_folder_gives_samples_without_instances(tmp_path):
    make_shapes_dataset(tmp_path, 2, fmt="masks")
    ds = open_dataset(tmp_path / "images")
    assert ds.format == "images" and len(ds) == 2 and all(not s.instances for s in ds)


def test_embedding_store_memory_disk_and_model_isolation(tmp_path):
    from samkit import SAM

    ckpt = save_random_checkpoint(tmp_path / "tiny.pt", TINY_CONFIG, seed=1)
    model = SAM(ckpt, device="cpu")
    image = np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    key = EmbeddingStore.key(image)
    mk = model_key(model)
    store = EmbeddingStore(tmp_path / "cache", mk, memory_items=1)
    encode_cached(model.engine, store, image, key)
    assert (store.hits, store.misses) == (0, 1)
    fresh = EmbeddingStore(tmp_path / "cache", mk)  # disk only
    hit = fresh.get(key)
    assert isinstance(hit, StoredState) and fresh.hits == 1
    torch.testing.assert_close(
        torch.as_tensor(hit.features), model.engine.get_state().features, rtol=0, atol=0
    )
    other = SAM(save_random_checkpoint(tmp_path / "o.pt", TINY_CONFIG, seed=2), device="cpu")
    assert model_key(other) != mk
    assert EmbeddingStore(tmp_path / "cache", model_key(other)).get(key) is None
    box = {"bboxes": [[5, 5, 40, 30]]}
    ref = model.predict(image[..., ::-1].copy(), **box)[0].masks  # arrays are BGR
    model.engine.reset_image()
    encode_cached(model.engine, fresh, lambda: pytest.fail("encoder must not run"), key)
    low, _ = model.engine.decode(
        normalize_prompts((48, 64), bboxes=box["bboxes"], low_res=model.engine.low_res), False
    )
    np.testing.assert_array_equal(model.engine.upscale(low)[0], np.asarray(ref)[0])
    with pytest.raises(ArgumentError, match="model_key must be a non-empty"):
        EmbeddingStore(None, "a/b")


def test_images_argument_points_at_a_separate_folder(tmp_path):
    data = make_shapes_dataset(tmp_path / "d", 2, fmt="coco")
    moved = tmp_path / "elsewhere"
    (tmp_path / "d" / "images").rename(moved)
    lost = open_dataset(data)
    assert len(lost) == 0 and len(lost.problems) == 2  # reported: image file not found
    ds = open_dataset(data, images=moved)
    assert len(ds) == 2 and not ds.problems and ds[0].path.parent == moved
    with pytest.raises(DatasetError, match="images"):
        open_dataset(data, images=tmp_path / "nope")
