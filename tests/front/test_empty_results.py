"""A Results without masks (every mask filtered by ``conf=``, or nothing found) goes through
every reader and writer: views, boxes, rows, JSON, COCO, YOLO, plots, saves, the CLI run.

One table of (path, call, check), run on a dense-held and an RLE-held empty Results.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from front_helpers import write_image
from samkit.call_args import CallOptions, write_result
from samkit.results import Results

H, W = 24, 32


def _empty(kind: str) -> Results:
    image = np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8)
    held: dict[str, Any] = (
        {"mask_array": np.zeros((0, H, W), bool)} if kind == "dense" else {"rles": []}
    )
    return Results(image, scores=np.zeros(0, np.float32), path="img.png", **held)


def _shape(n_cols: int | None) -> Callable[[Any], bool]:
    return lambda v: tuple(v.shape) == ((0,) if n_cols is None else (0, n_cols))


def _saved(tmp: Path, r: Results) -> bool:
    out = r.save(tmp / "overlay.png")
    return np.array_equal(cv2.imread(str(out)), r.orig_img)  # nothing drawn


def _txt(tmp: Path, r: Results, **kw: Any) -> bool:
    return r.save_txt(tmp / "labels.txt", **kw).read_text() == ""


def _run_files(tmp: Path, r: Results) -> bool:
    write_result(r, tmp, "img", CallOptions(save=True, save_txt=True, save_conf=True))
    return (tmp / "img.jpg").is_file() and (tmp / "labels" / "img.txt").read_text() == ""


def _df(r: Results) -> bool:
    pytest.importorskip("polars")
    return r.to_df().height == 0


CASES: list[tuple[str, Callable[[Results, Path], Any], Callable[[Any], bool]]] = [
    ("areas", lambda r, t: r.areas, _shape(None)),
    ("xyxy", lambda r, t: r.xyxy, _shape(4)),
    ("xy", lambda r, t: r.xy, lambda v: v == []),
    ("masks.data", lambda r, t: r.masks.data, lambda v: tuple(v.shape) == (0, H, W)),
    ("masks.xy", lambda r, t: r.masks.xy, lambda v: v == []),
    ("masks.xyn", lambda r, t: r.masks.xyn, lambda v: v == []),
    ("boxes.data", lambda r, t: r.boxes.data, _shape(6)),
    ("boxes.xyxy", lambda r, t: r.boxes.xyxy, _shape(4)),
    ("boxes.xywh", lambda r, t: r.boxes.xywh, _shape(4)),
    ("boxes.xyxyn", lambda r, t: r.boxes.xyxyn, _shape(4)),
    ("boxes.xywhn", lambda r, t: r.boxes.xywhn, _shape(4)),
    ("boxes.conf", lambda r, t: r.boxes.conf, _shape(None)),
    ("boxes.cls", lambda r, t: r.boxes.cls, _shape(None)),
    ("labels", lambda r, t: r.labels(), lambda v: v == []),
    ("plot", lambda r, t: r.plot(), lambda v: np.array_equal(v, _empty("dense").orig_img)),
    ("save", lambda r, t: _saved(t, r), bool),
    ("save_txt", lambda r, t: _txt(t, r), bool),
    ("save_txt save_conf", lambda r, t: _txt(t, r, save_conf=True), bool),
    ("yolo_lines", lambda r, t: r.yolo_lines(save_conf=True), lambda v: v == []),
    ("coco_records", lambda r, t: r.coco_records(image_id=3), lambda v: v == []),
    ("to_json", lambda r, t: json.loads(r.to_json())["objects"], lambda v: v == []),
    ("image_summary", lambda r, t: r.image_summary()["objects"], lambda v: v == []),
    ("summary", lambda r, t: r.summary(normalize=True), lambda v: v == []),
    ("to_df", lambda r, t: _df(r), bool),
    (
        "to_csv",
        lambda r, t: (pytest.importorskip("polars"), r.to_csv())[1],
        lambda v: v.strip() == "",
    ),
    ("verbose", lambda r, t: r.verbose(), lambda v: v == "(no detections), "),
    ("new", lambda r, t: len(r.new()), lambda v: v == 0),
    ("run files", lambda r, t: _run_files(t, r), bool),
    ("polygons_with_holes", lambda r, t: r.polygons_with_holes(), lambda v: v == []),
]


@pytest.mark.parametrize("kind", ["dense", "rle"])
@pytest.mark.parametrize(("name", "call", "check"), CASES, ids=[c[0] for c in CASES])
def test_every_path_takes_an_empty_result(kind, name, call, check, tmp_path) -> None:
    value = call(_empty(kind), tmp_path)
    assert check(value), f"{name}: {value!r}"


def test_conf_that_filters_every_mask(tiny_checkpoint, tmp_path) -> None:
    """The issue's case: a prompted prediction whose masks all score below ``conf``."""
    from samkit import SAM

    image = tmp_path / "one.png"
    write_image(image, 48, 64, seed=1)
    (r,) = SAM(str(tiny_checkpoint)).predict(str(image), bboxes=[5, 5, 40, 30], conf=1.0)
    assert len(r) == 0 and r.low_res_logits is not None and len(r.low_res_logits) == 0
    assert r.summary() == [] and json.loads(r.to_json())["objects"] == []
    assert r.coco_records() == [] and r.plot().shape == (48, 64, 3)


def test_cli_conf_that_filters_every_mask(tiny_checkpoint, tmp_path, monkeypatch, capsys) -> None:
    from samkit.cli import main

    image = tmp_path / "one.png"
    write_image(image, 48, 64, seed=1)
    monkeypatch.chdir(tmp_path)
    code = main(["predict", f"model={tiny_checkpoint}", f"source={image}",
                 "bboxes=[5,5,40,30]", "conf=1.0"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 0, err
    summary = json.loads((tmp_path / "runs" / "predict" / "predictions.json").read_text())
    assert summary["counts"]["masks"] == 0 and summary["images"][0]["objects"] == []
    assert (tmp_path / "runs" / "predict" / "one.jpg").is_file()
