"""What code written for Ultralytics reads and passes, beyond the documented snippets: the
model's attributes, Results' rows (compared with Ultralytics' own ``Results`` on the same
masks), ``speed`` keys, ``verbose=False``, ``max_det``, ``vid_stride``, saved videos, the
overlay and label keys, and the same keys on the command line (``samkit segment predict``).
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from front_helpers import write_image
from samkit import SAM
from samkit.cli import main
from samkit.results import Results

H, W = 48, 64


@pytest.fixture(scope="module")
def sam(tiny_checkpoint) -> SAM:
    return SAM(str(tiny_checkpoint), device="cpu")


@pytest.fixture
def image(tmp_path) -> Path:
    path = tmp_path / "one.png"
    write_image(path, H, W, seed=1)
    return path


def _video(path: Path, frames: int, fps: float = 10.0) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), fps, (W, H))
    for i in range(frames):
        frame = np.full((H, W, 3), 20 * i, np.uint8)
        cv2.rectangle(frame, (10, 10), (40, 30), (255, 255, 255), -1)
        writer.write(frame)
    writer.release()
    return path


def _two_masks() -> Results:
    m = np.zeros((2, H, W), bool)
    m[0, 5:20, 10:30] = True
    m[1, 30:40, 40:60] = True
    image = np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8)
    return Results(image, mask_array=m, scores=np.array([0.9, 0.4], np.float32), device="cpu")


def test_summary_rows_match_ultralytics() -> None:
    from ultralytics.engine.results import Results as Theirs

    ours = _two_masks()
    data = torch.cat([torch.as_tensor(ours.xyxy, dtype=torch.float32),
                      torch.as_tensor(ours.scores)[:, None], torch.zeros(2, 1)], 1)  # fmt: skip
    theirs = Theirs(ours.orig_img, path="x.png", names={0: "object"}, boxes=data,
                    masks=torch.from_numpy(ours.dense_masks()))  # fmt: skip
    for normalize in (False, True):
        a, b = ours.summary(normalize=normalize), theirs.summary(normalize=normalize)
        assert isinstance(a, list) and len(a) == len(b) == 2
        for row_a, row_b in zip(a, b, strict=True):
            assert row_a.keys() == row_b.keys()
            assert (row_a["name"], row_a["class"]) == (row_b["name"], row_b["class"])
            assert row_a["confidence"] == pytest.approx(row_b["confidence"])
            assert row_a["box"] == pytest.approx(row_b["box"])
            assert row_a["segments"].keys() == row_b["segments"].keys()
    assert ours.verbose() == theirs.verbose() == "2 objects, "
    assert ours.to_df().columns == theirs.to_df().columns
    assert ours.to_csv().splitlines()[0] == theirs.to_csv().splitlines()[0]
    assert len(ours.to_csv().splitlines()) == 3
    new = ours.new()
    assert len(new) == 0 and new.path == ours.path and new.speed == ours.speed
    assert set(theirs.speed) == {"preprocess", "inference", "postprocess"}


def test_model_attributes(sam, tiny_checkpoint) -> None:
    assert sam.task == "segment" and sam.device == torch.device("cpu")
    assert sam.ckpt_path == sam.checkpoint and Path(sam.ckpt_path).name == tiny_checkpoint.name
    assert sam.model_name == str(tiny_checkpoint)
    assert sam.overrides["task"] == "segment" and sam.overrides["model"] == sam.checkpoint
    assert sam.eval() is sam and not sam.model.training
    grabcut = SAM("grabcut")
    assert grabcut.device == torch.device("cpu") and grabcut.ckpt_path == "grabcut"


def test_speed_keys_save_dir_and_predictor(sam, image, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (r,) = sam.predict(str(image), bboxes=[5, 5, 40, 30])
    assert set(r.speed) == {"preprocess", "inference", "postprocess"}
    assert all(v >= 0 for v in r.speed.values()) and r.speed["inference"] > 0
    assert r.save_dir is None and sam.predictor is not None and sam.predictor.save_dir is None
    (saved,) = sam.predict(str(image), bboxes=[5, 5, 40, 30], save=True, conf=0.0)
    assert saved.save_dir == str(Path("runs/segment/predict"))
    assert sam.predictor.save_dir == Path("runs/segment/predict")
    assert sam.predictor.args["save"] is True and sam.predictor.args["conf"] == 0.0
    (every,) = sam.predict(str(image), points_per_side=2)
    assert set(every.speed) == {"preprocess", "inference", "postprocess"}


def test_overrides_apply_to_predict(sam, image, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    sam.overrides["max_det"] = 1
    try:
        (r,) = sam.predict(str(image), bboxes=[[5, 5, 40, 30], [1, 1, 20, 20], [30, 10, 60, 40]])
    finally:
        del sam.overrides["max_det"]
    assert len(r) == 1


def test_max_det_keeps_the_best_scores_in_order(sam, image) -> None:
    boxes = [[5, 5, 40, 30], [1, 1, 20, 20], [30, 10, 60, 40], [0, 0, 63, 47]]
    (full,) = sam.predict(str(image), bboxes=boxes)
    (capped,) = sam.predict(str(image), bboxes=boxes, max_det=2)
    best = np.sort(np.argsort(-full.scores, kind="stable")[:2])
    assert capped.object_ids.tolist() == best.tolist()
    np.testing.assert_array_equal(capped.scores, full.scores[best])
    with pytest.raises(Exception, match="max_det"):
        sam.predict(str(image), bboxes=boxes, max_det=0)


def test_verbose_false_prints_no_progress_bar(sam, tmp_path, capsys) -> None:
    for i in range(2):
        write_image(tmp_path / f"im{i}.png", H, W, seed=i)
    sam.predict(str(tmp_path), bboxes=[5, 5, 40, 30])
    assert "samkit" in capsys.readouterr().err  # the default keeps its bar for folders
    sam.predict(str(tmp_path), bboxes=[5, 5, 40, 30], verbose=False)
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""


def test_vid_stride_and_saved_video(sam, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    clip = _video(tmp_path / "clip.avi", 7)
    results = sam.predict(str(clip), bboxes=[5, 5, 40, 30], vid_stride=3, save=True,
                          save_txt=True)  # fmt: skip
    assert [r.frame for r in results] == [0, 3, 6]
    run = tmp_path / "runs" / "segment" / "predict"
    assert not list(run.glob("*.jpg"))  # one video, not a JPEG per frame
    cap = cv2.VideoCapture(str(run / "clip.avi"))
    frames, fps = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)), cap.get(cv2.CAP_PROP_FPS)
    cap.release()
    assert frames == 3 and fps == pytest.approx(10 / 3, rel=1e-2)
    assert sorted(p.name for p in (run / "labels").iterdir()) == [
        "clip_000000.txt", "clip_000003.txt", "clip_000006.txt"
    ]  # fmt: skip


def test_overlay_and_label_keys(sam, image, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    kw = {"bboxes": [5, 5, 40, 30], "save": True, "save_txt": True, "exist_ok": True}
    (r,) = sam.predict(str(image), **kw, save_conf=True, show_labels=False, show_conf=False,
                       show_boxes=False, line_width=3)  # fmt: skip
    run = tmp_path / "runs" / "segment" / "predict"
    expect = r.save(tmp_path / "expect.jpg", labels=False, conf=False, boxes=False, line_width=3)
    assert (run / "one.jpg").read_bytes() == expect.read_bytes()
    lines = (run / "labels" / "one.txt").read_text().splitlines()
    assert lines == r.yolo_lines(save_conf=True)
    assert all(ln.split()[-1] == f"{float(r.scores[0]):g}" for ln in lines)
    assert len(lines[0].split()) == len(r.yolo_lines()[0].split()) + 1


CLI_KEYS = {
    "imgsz=256": ("imgsz", 256),
    "imgsz=[1024,1024]": ("imgsz", [1024, 1024]),
    "max_det=1": ("max_det", 1),
    "vid_stride=2": ("vid_stride", 2),
    "save_conf=True": ("save_conf", True),
    "show_labels=False": ("show_labels", False),
    "show_conf=False": ("show_conf", False),
    "show_boxes=False": ("show_boxes", False),
    "line_width=2": ("line_width", 2),
    "retina_masks=True": ("retina_masks", True),
    "task=segment": ("task", "segment"),
}


@pytest.mark.parametrize("token", list(CLI_KEYS))
def test_cli_parses_ultralytics_keys(token) -> None:
    from samkit.cli import MODES, parse_args

    parsed = parse_args("predict", MODES["predict"], ["source=x.jpg", token])
    key, value = CLI_KEYS[token]
    assert parsed[key] == value


def test_cli_ultralytics_keys_take_effect(tiny_checkpoint, image, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    base = [f"model={tiny_checkpoint}", f"source={image}", "bboxes=[[5,5,40,30],[1,1,20,20]]"]
    keys = ["imgsz=256", "save_conf=True", "show_labels=False", "show_conf=False",
            "line_width=2", "retina_masks=True", "task=segment"]  # fmt: skip
    assert main(["predict", *base, *keys]) == 0
    assert main(["predict", *base, "max_det=1"]) == 0
    first, capped = (json.loads((tmp_path / "runs" / n / "predictions.json").read_text())
                     for n in ("predict", "predict2"))  # fmt: skip
    assert first["counts"]["masks"] == 2 and capped["counts"]["masks"] == 1
    scores = [o["score"] for o in first["images"][0]["objects"]]
    assert capped["images"][0]["objects"][0]["score"] == max(scores)
    for line in (tmp_path / "runs" / "predict" / "labels" / "one.txt").read_text().splitlines():
        assert f"{float(line.split()[-1]):g}" in {f"{s:g}" for s in np.float32(scores).tolist()}


def test_cli_task_word_and_video(tiny_checkpoint, tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    clip = _video(tmp_path / "clip.avi", 5)
    base = [f"model={tiny_checkpoint}", f"source={clip}", "bboxes=[5,5,40,30]", "vid_stride=2"]
    assert main(["segment", "predict", *base]) == 0
    out = capsys.readouterr().out
    assert "3 video frame(s)" in out and "clip.avi" in out
    assert (tmp_path / "runs" / "predict" / "clip.avi").is_file()
    assert not list((tmp_path / "runs" / "predict").glob("*.jpg"))
    assert main(["segment", *base]) == 0  # the mode defaults to predict, as Ultralytics'
    assert main(["detect", "predict", *base]) == 2
    assert main(["predict", *base, "task=detect"]) == 2
    assert main(["predict", *base, "imgsz=640"]) == 1  # not the model's input size


def test_export_checks_onnx_before_loading(tiny_checkpoint, tmp_path, monkeypatch, capsys) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "onnx", None)  # as if the onnx extra were not installed
    monkeypatch.chdir(tmp_path)
    loaded = []
    monkeypatch.setattr("samkit.build.build_sam", lambda *a, **k: loaded.append(a))
    code = main(["export", f"model={tiny_checkpoint}"])
    captured = capsys.readouterr()
    assert code == 1 and "samkit[onnx]" in captured.err
    assert "exporting" not in captured.out + captured.err and not loaded


def test_cli_local_only_keys_refused_on_ray(tiny_checkpoint, image, capsys) -> None:
    folder = str(image.parent)
    code = main(["predict", f"model={tiny_checkpoint}", f"source={folder}", "engine=ray",
                 "max_det=1", "show_labels=False"])  # fmt: skip
    assert code == 2 and "max_det, show_labels" in capsys.readouterr().err


def test_to_df_without_polars_says_what_to_install(monkeypatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "polars", None)
    r = _two_masks()
    for call in (r.to_df, r.to_csv):
        with pytest.raises(ImportError, match="pip install polars"):
            call()
    assert len(r.summary()) == 2  # the rows themselves need nothing
