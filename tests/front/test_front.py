"""The front: the snippets users write, and equality with the engine for every prompt shape.

Equality: the front decodes objects in batches; the engine (SamPredictor.predict) one object
at a time. Masks must be identical; scores and low-res logits agree to float rounding of the
batched matrix products (max |diff| printed; bound 1e-5 absolute).
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from front_helpers import (
    HAS_EVERYTHING,
    QUICK_EVERYTHING,
    TINY_CONFIG,
    save_random_checkpoint,
    write_image,
)
from reference import SMALL_CONFIG
from samkit import SAM, Predictor, Results, SamPredictor, transforms
from samkit.errors import SamkitError

H, W = 120, 160


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("front")
    ckpt = save_random_checkpoint(root / "renamed_mobile.pt", SMALL_CONFIG, seed=0)
    tiny = save_random_checkpoint(root / "tiny.pt", TINY_CONFIG, seed=1)
    rgb = write_image(root / "zidane.png", H, W)
    return {"ckpt": ckpt, "tiny": tiny, "image": root / "zidane.png", "rgb": rgb}


@pytest.fixture(scope="module")
def model(files):
    return SAM(files["ckpt"], device="cpu")


@pytest.fixture(scope="module")
def session(files, model):
    """A Predictor with the image set (one encoder pass) and the engine on the same image."""
    predictor = Predictor(overrides={"model": str(files["ckpt"])}, model=model)
    predictor.set_image(str(files["image"]))
    engine = SamPredictor(model.model)
    engine.set_image(files["rgb"])
    return predictor, engine


def _check_result(r: Results, n: int) -> None:
    assert len(r) == n
    masks = np.asarray(r.masks)
    assert masks.shape == (n, H, W) and masks.dtype == bool
    assert r.scores.shape == (n,) and r.scores.dtype == np.float32
    assert np.asarray(r.boxes).shape == (n, 4)
    assert r.orig_img.shape == (H, W, 3) and r.orig_img.dtype == np.uint8


def _engine_objects(engine, objects, multimask=False):
    """Reference: one SamPredictor.predict call per object -> (masks, scores, low-res, logits)."""
    out = []
    for obj in objects:
        logits, scores, low = engine.predict(multimask_output=multimask, return_logits=True, **obj)
        out.append((logits > engine.model.mask_threshold, scores, low, logits))
    return out


def _assert_equal(result: Results, reference) -> None:
    """Masks identical except where the engine's own logit is within 1e-4 of the threshold
    (there float rounding of the batched products decides); scores / logits within 1e-5.
    With 3 masks per object (multimask output) every candidate is compared, else the best."""
    worst, flipped = 0.0, 0
    per = len(result) // len(reference)
    for i, (masks, scores, low, logits) in enumerate(reference):
        for c in range(per):
            ref = c if per == 3 else int(np.argmax(scores))
            j = i * per + c
            differ = result.mask(j) != masks[ref]
            assert (np.abs(logits[ref][differ]) < 1e-4).all(), f"object {i}: masks differ"
            flipped += int(differ.sum())
            worst = max(
                worst,
                abs(float(result.scores[j]) - float(scores[ref])),
                float(np.abs(result.low_res_logits[j, 0] - low[ref]).max()),
            )
    print(f"max |diff| scores/logits vs engine: {worst:.2e}; borderline pixels flipped: {flipped}")
    assert worst <= 1e-5


# ----------------------------------------------------------------------------- snippets
def test_snippet_info_and_predict_point(files, model, capsys):
    summary = model.info()
    printed = capsys.readouterr().out
    assert "parameters" in printed and summary.params_total > 0
    assert summary.as_dict()["params_total"] == summary.params_total
    results = model.predict(str(files["image"]), points=[90, 37], labels=[1])
    assert isinstance(results, list) and len(results) == 1
    r = results[0]
    _check_result(r, 1)
    assert r.low_res_logits.shape == (1, 1, 256, 256)
    assert r.path == str(files["image"])
    assert np.array_equal(r.orig_img, files["rgb"][:, :, ::-1])  # BGR


def test_snippet_call_with_box(files, model, session):
    _, engine = session
    r = model(str(files["image"]), bboxes=[43, 43, 124, 109])[0]
    _check_result(r, 1)
    _assert_equal(r, _engine_objects(engine, [{"box": np.array([43, 43, 124, 109])}]))


def test_snippet_no_prompt_segments_everything(files):
    tiny = SAM(files["tiny"], device="cpu")
    if not HAS_EVERYTHING:
        with pytest.raises(SamkitError, match="not available yet"):
            tiny(str(files["image"]))
        return
    r = tiny(str(files["image"]), **QUICK_EVERYTHING)[0]
    masks = np.asarray(r.masks)
    assert len(r) >= 1 and masks.shape == (len(r), H, W) and masks.dtype == bool
    assert r.low_res_logits is None and r.stability_scores.shape == (len(r),)
    assert np.asarray(r.boxes).shape == (len(r), 4)


@pytest.mark.slow
@pytest.mark.skipif(not HAS_EVERYTHING, reason="segment everything not installed")
def test_snippet_no_prompt_with_defaults(files):
    r = SAM(files["tiny"], device="cpu")(str(files["image"]))[0]  # 32x32 grid, Meta's filters
    assert np.asarray(r.masks).dtype == bool and r.masks.shape[1:] == (H, W)
    assert (r.scores > 0.88).all() and (r.stability_scores >= 0.95).all()


def test_snippet_predictor(files):
    # The tiny test model's input is 256 px (published models: imgsz=1024).
    predictor = Predictor(
        overrides=dict(
            conf=0.25, task="segment", mode="predict", imgsz=256, model=str(files["tiny"])
        )
    )
    predictor.set_image(str(files["image"]))
    predictor.set_image(cv2.imread(str(files["image"])))
    engine = SamPredictor(predictor.sam.model)
    engine.set_image(files["rgb"])
    box = np.array([43, 43, 124, 109])
    results = predictor(bboxes=box.tolist())
    _, ref_scores, _ = engine.predict(box=box, multimask_output=False)
    assert len(results) == 1 and len(results[0]) == int((ref_scores >= 0.25).sum())
    results = predictor(points=[90, 37], labels=[1])
    _, ref_scores, _ = engine.predict(np.array([[90, 37]]), np.array([1]), multimask_output=False)
    assert len(results[0]) == int((ref_scores >= 0.25).sum())
    assert np.asarray(results[0].masks).dtype == bool and results[0].masks.shape[1:] == (H, W)
    assert results[0].low_res_logits.shape[1:] == (1, 64, 64)
    predictor.reset_image()
    with pytest.raises(SamkitError, match="set_image"):
        predictor(points=[90, 37])
    if not HAS_EVERYTHING:
        with pytest.raises(SamkitError, match="not available yet"):
            predictor(source=str(files["image"]), crop_n_layers=1, points_stride=64)
        return
    # points_stride=4 instead of 64 keeps this quick; conf_thres=0 keeps masks to count.
    results = predictor(source=str(files["image"]), crop_n_layers=1, points_stride=4,
                        conf_thres=0.0, stability_score_thresh=0.0)  # fmt: skip
    assert len(results) == 1 and len(results[0]) >= 1
    assert results[0].masks.shape[1:] == (H, W) and np.asarray(results[0].masks).dtype == bool


def test_predictor_rejects_bad_overrides(files):
    with pytest.raises(SamkitError, match="Did you mean 'conf'"):
        Predictor(overrides={"cnof": 0.3})
    with pytest.raises(SamkitError, match="imgsz"):
        _ = Predictor(overrides={"model": str(files["tiny"]), "imgsz": 1024}).sam


# ----------------------------------------------------------------------------- table rows
ROWS = {
    "point (2,)": ({"points": [90, 37]}, [{"point_coords": [[90, 37]], "point_labels": [1]}]),
    "pos+neg (K,2)": (
        {"points": [[90, 37], [30, 90]], "labels": [1, 0]},
        [{"point_coords": [[90, 37], [30, 90]], "point_labels": [1, 0]}],
    ),
    "(N,K,2)": (
        {"points": [[[90, 37], [30, 90]], [[20, 20], [140, 100]]], "labels": [[1, 0], [1, 1]]},
        [
            {"point_coords": [[90, 37], [30, 90]], "point_labels": [1, 0]},
            {"point_coords": [[20, 20], [140, 100]], "point_labels": [1, 1]},
        ],
    ),
    "ragged": (
        {
            "points": [
                [[90, 37]],
                [[20, 20], [140, 100], [60, 60]],
                [[10, 100], [70, 30]],
                [[5, 5]],
            ],
            "labels": [[1], [1, 0, 0], [1, 0], [1]],
        },
        [
            {"point_coords": [[90, 37]], "point_labels": [1]},
            {"point_coords": [[20, 20], [140, 100], [60, 60]], "point_labels": [1, 0, 0]},
            {"point_coords": [[10, 100], [70, 30]], "point_labels": [1, 0]},
            {"point_coords": [[5, 5]], "point_labels": [1]},
        ],
    ),
    "box (4,)": ({"bboxes": [43, 43, 124, 109]}, [{"box": [43, 43, 124, 109]}]),
    "boxes (N,4)": (
        {"bboxes": [[43, 43, 124, 109], [0, 10, 60, 70]]},
        [{"box": [43, 43, 124, 109]}, {"box": [0, 10, 60, 70]}],
    ),
    "boxes+points": (
        {
            "bboxes": [[43, 43, 124, 109], [0, 10, 60, 70]],
            "points": [[[80, 70]], [[30, 40]]],
            "labels": [[1], [0]],
        },
        [
            {"box": [43, 43, 124, 109], "point_coords": [[80, 70]], "point_labels": [1]},
            {"box": [0, 10, 60, 70], "point_coords": [[30, 40]], "point_labels": [0]},
        ],
    ),
}


def _np(obj: dict) -> dict:
    return {k: np.asarray(v) for k, v in obj.items()}


@pytest.mark.parametrize(
    "row", [pytest.param(r, marks=pytest.mark.slow) if r == "ragged" else r for r in ROWS]
)
def test_table_row_equals_engine(session, row):
    predictor, engine = session
    kwargs, reference = ROWS[row]
    for multimask in (False, True):
        per = 3 if multimask else 1  # multimask: 3 masks per object, as Ultralytics
        r = predictor(multimask_output=multimask, **kwargs)[0]
        _check_result(r, per * len(reference))
        assert r.object_ids.tolist() == np.repeat(np.arange(len(reference)), per).tolist()
        _assert_equal(r, _engine_objects(engine, [_np(o) for o in reference], multimask))


def test_negative_point_is_honoured(session):
    predictor, _ = session
    both = predictor(points=[[90, 37], [30, 90]], labels=[1, 0])[0]
    alone = predictor(points=[[90, 37]], labels=[1])[0]
    assert len(both) == 1  # one object, not two
    assert both.scores[0] != alone.scores[0]


def test_keep_all_false_keeps_the_best_candidate(session):
    predictor, engine = session
    front = Predictor(overrides={"multimask_output": True, "keep_all": False}, model=predictor.sam)
    front.set_image(predictor._path)
    r = front(points=[[[90, 37]], [[20, 20]]])[0]
    _check_result(r, 2)
    assert r.object_ids.tolist() == [0, 1]
    ref = [{"point_coords": np.array([[90, 37]])}, {"point_coords": np.array([[20, 20]])}]
    _assert_equal(
        r, _engine_objects(engine, [o | {"point_labels": np.array([1])} for o in ref], True)
    )


def test_flat_points_follow_ultralytics_counts(session):
    predictor, engine = session
    two = predictor(points=[[90, 37], [30, 90]], labels=[1, 1])[0]  # 2 objects, 1 point each
    _check_result(two, 2)
    ref = [{"point_coords": [[90, 37]], "point_labels": [1]},
           {"point_coords": [[30, 90]], "point_labels": [1]}]  # fmt: skip
    _assert_equal(two, _engine_objects(engine, [_np(o) for o in ref]))
    three_each = predictor(points=[[90, 37], [30, 90]], multimask_output=True)[0]
    _check_result(three_each, 6)


def test_mask_prompts_low_res_and_binary(session):
    predictor, engine = session
    first = predictor(points=[90, 37])[0]
    for masks in (first, first.low_res_logits):  # a Results or its logits
        again = predictor(points=[90, 37], masks=masks)[0]
        prompt = {"point_coords": np.array([[90, 37]]), "point_labels": np.array([1]),
                  "mask_input": first.low_res_logits[0]}  # fmt: skip
        _assert_equal(again, _engine_objects(engine, [prompt]))
    binary = np.zeros((H, W), dtype=bool)
    binary[30:90, 40:120] = True
    r = predictor(masks=binary)[0]
    _check_result(r, 1)
    prompt = transforms.mask_to_logits_prompt(binary, (H, W), 1024)
    _assert_equal(r, _engine_objects(engine, [{"mask_input": prompt}]))


def test_conf_filters_only_when_set(session):
    predictor, _ = session
    objs = {"points": [[[90, 37]], [[20, 20]], [[140, 100]]]}
    r = predictor(**objs)[0]
    assert len(r) == 3  # no hidden filter, whatever the scores
    threshold = float(np.median(r.scores))
    filtered = Predictor(overrides={"conf": threshold}, model=predictor.sam)
    filtered.set_image(predictor._path)
    kept = filtered(**objs)[0]
    assert kept.object_ids.tolist() == [i for i in range(3) if r.scores[i] >= threshold]


# ----------------------------------------------------------------------------- results
def test_results_writers(session, tmp_path):
    predictor, _ = session
    r = predictor(bboxes=[[43, 43, 124, 109], [0, 10, 60, 70]])[0]
    plot = r.plot()
    assert (
        plot.shape == (H, W, 3) and plot.dtype == np.uint8 and not np.array_equal(plot, r.orig_img)
    )
    saved = r.save(tmp_path / "overlay.png")
    assert np.array_equal(cv2.imread(str(saved)), plot)
    txt = r.save_txt(tmp_path / "labels" / "a.txt").read_text().splitlines()
    assert len(txt) == sum(len(parts) for parts in r.xy)
    assert all(line.split()[0] == "0" for line in txt)
    assert all(((p >= 0) & (p <= 1)).all() for parts in r.xyn for p in parts)
    from samkit.masks import rle_to_mask

    records = r.coco_records(image_id=7)
    assert len(records) == 2 and records[0]["image_id"] == 7
    for rec, mask in zip(records, r.iter_masks(), strict=True):
        rle = rec["segmentation"]
        from samkit.masks import coco_string_to_counts

        decoded = rle_to_mask({"size": rle["size"], "counts": coco_string_to_counts(rle["counts"])})
        assert np.array_equal(decoded, mask) and rec["area"] == int(mask.sum())
    import json

    assert len(json.loads(r.to_json())["objects"]) == 2
    assert len(r[1:]) == 1 and [len(x) for x in r] == [1, 1]


def test_precision_options_reach_the_engine() -> None:
    import torch

    from reference import SMALL_CONFIG
    from samkit.build import build_from_config

    model = SAM(build_from_config(SMALL_CONFIG), device="cpu", dtype="bf16")
    assert model.engine.predictor.dtype == torch.bfloat16
    assert (
        SAM(build_from_config(SMALL_CONFIG), device="cpu").engine.predictor.dtype == torch.float32
    )
