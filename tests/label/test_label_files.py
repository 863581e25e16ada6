"""``samkit label`` and the files it finds: LabelMe content beyond polygons survives saves, a
label file it could not read is never overwritten, label-name clashes are refused, images
replaced on disk are reloaded, failures answer with a detail, exports are portable."""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from label_helpers import draw_image, region_checkpoint, write_images
from samkit.build import build_sam
from samkit.errors import ArgumentError
from samkit.masks import coco_rle, rle_to_mask
from samkit.predictor import SamPredictor
from samkit.sources import read_image

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

pytest.importorskip("fastapi")
pytest.importorskip("httpx")
from fastapi.testclient import TestClient  # noqa: E402

from samkit.label import build  # noqa: E402

LOCAL = "http://127.0.0.1:8765"


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return region_checkpoint(tmp_path_factory.mktemp("label_files_ckpt") / "tiny.pth")


def _data(tmp: Path, count: int = 2) -> Path:
    write_images(tmp / "images", count)
    return tmp / "images"


def _client(data: Path, ckpt: Path, tmp: Path, **options: Any) -> Any:
    server = build(data, str(ckpt), "cat,dog", output_dir=tmp / "out", cache_dir=tmp / "cache",
                   prefetch=0, **options)  # fmt: skip
    return TestClient(server.app, base_url=LOCAL, raise_server_exceptions=False)


def _box(y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    mask = np.zeros((96, 128), bool)
    mask[y0:y1, x0:x1] = True
    return mask


def test_labelme_content_beyond_polygons_survives_saves(ckpt: Path, tmp_path: Path) -> None:
    """Rectangles, points, file flags, custom keys and a polygon's description / flags are
    written back on every save (also after a restart, when objects come from samkit's parts)."""
    data = _data(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    polygon = {"label": "dog", "points": [[20, 10], [60, 10], [60, 50], [20, 50]],
               "group_id": None, "description": "occluded", "shape_type": "polygon",
               "flags": {"truncated": True}}  # fmt: skip
    rectangle = {"label": "sign", "points": [[70, 20], [100, 40]], "group_id": None,
                 "description": "speed limit", "shape_type": "rectangle", "flags": {}}  # fmt: skip
    point = {"label": "nose", "points": [[90, 70]], "group_id": 3, "description": "",
             "shape_type": "point", "flags": {"visible": False}}  # fmt: skip
    record = {"version": "5.4.1", "flags": {"night": True}, "shapes": [polygon, rectangle, point],
              "imagePath": "../images/img00.png", "imageData": None, "imageHeight": 96,
              "imageWidth": 128, "reviewer": "kim"}  # fmt: skip
    (out / "img00.json").write_text(json.dumps(record))
    for restart in range(2):
        client = _client(data, ckpt, tmp_path)
        objects = client.get("/api/images/0/annotations").json()
        assert [o["label"] for o in objects] == ["dog", "cat"][: restart + 1]
        dog = objects[0]
        new = {"label": "cat", "rle": coco_rle(_box(60, 90, 10, 40))}
        assert client.put("/api/images/0/annotations", json=[dog, new]).status_code == 200
        saved = json.loads((out / "img00.json").read_text())
        assert saved["flags"] == {"night": True} and saved["reviewer"] == "kim", restart
        assert rectangle in saved["shapes"] and point in saved["shapes"], restart
        (kept,) = [s for s in saved["shapes"] if s["label"] == "dog"]
        assert kept["description"] == "occluded" and kept["flags"] == {"truncated": True}
        (added,) = [s for s in saved["shapes"] if s["label"] == "cat"]
        assert added["description"] == "" and added["flags"] == {}
    assert "sign" not in client.get("/api/config").json()["classes"]  # not an object class


def test_label_file_that_could_not_be_read_is_never_overwritten(ckpt: Path, tmp_path: Path) -> None:
    data = _data(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    bad = out / "img00.txt"
    bad.write_text("0 0.1 0.1 0.5 0.1 0.5 0.5\n1 0.2 0.2 0.7\n")  # line 2 is not a polygon
    before = bad.read_bytes()
    client = _client(data, ckpt, tmp_path)
    listing = client.get("/api/images").json()
    assert listing[0]["blocked"] and "img00.txt" in listing[0]["blocked"]
    assert listing[1]["blocked"] is None
    body = [{"label": "cat", "rle": coco_rle(_box(10, 40, 10, 40))}]
    answer = client.put("/api/images/0/annotations", json=body)
    assert answer.status_code == 409
    detail = answer.json()["detail"]
    assert detail.startswith("id: not saved") and f"{bad}:2:" in detail
    assert bad.read_bytes() == before
    assert not (out / "img00.json").exists() and not (out / ".coco_parts").exists()
    assert client.put("/api/images/1/annotations", json=body).status_code == 200  # others save


def test_images_sharing_a_label_file_name_are_refused(ckpt: Path, tmp_path: Path) -> None:
    data = tmp_path / "images"
    data.mkdir()
    img = draw_image(96, 128, 0)[:, :, ::-1]
    cv2.imwrite(str(data / "img4.jpg"), img)
    cv2.imwrite(str(data / "img4.png"), img)
    cv2.imwrite(str(data / "other.png"), img)
    with pytest.raises(ArgumentError, match=r"img4\.jpg and img4\.png would share") as info:
        _client(data, ckpt, tmp_path)
    assert "img4.txt / img4.json" in str(info.value)
    assert not (tmp_path / "out").exists()
    _client(data, ckpt, tmp_path, formats="coco")  # COCO parts are named by the whole file name


def test_image_replaced_on_disk_is_reloaded(ckpt: Path, tmp_path: Path) -> None:
    """Masks come from the new image, a new size is taken (objects rescaled) and saving works."""
    data = _data(tmp_path)
    target = data / "img01.png"
    client = _client(data, ckpt, tmp_path)
    obj = {"label": "cat", "rle": coco_rle(_box(10, 40, 20, 60))}
    assert client.put("/api/images/1/annotations", json=[obj]).status_code == 200
    body = {"points": [[40, 30]], "labels": [1]}
    first = client.post("/api/images/1/predict", json=body).json()
    reference = SamPredictor(build_sam(ckpt))

    replacement = draw_image(96, 128, 7)[:, :, ::-1]
    cv2.imwrite(str(target), replacement)
    os.utime(target, ns=(1, 1))  # a changed mtime even on coarse clocks
    answer = client.post("/api/images/1/predict", json=body).json()
    reference.set_image(read_image(target))
    want, _, _ = reference.predict(np.array([[40, 30]]), np.array([1]))
    got = np.stack([rle_to_mask(m["rle"]) for m in answer["masks"]])
    np.testing.assert_array_equal(got, want)
    assert [m["rle"] for m in answer["masks"]] != [m["rle"] for m in first["masks"]]

    cv2.imwrite(str(target), cv2.resize(replacement, (256, 192)))  # twice the size
    listing = client.get("/api/images").json()
    assert (listing[1]["width"], listing[1]["height"]) == (256, 192)
    (scaled,) = client.get("/api/images/1/annotations").json()
    mask = rle_to_mask(scaled["rle"])
    assert mask.shape == (192, 256) and mask[20:80, 40:120].all() and mask.sum() == 60 * 80
    answer = client.post("/api/images/1/predict", json={"box": [10, 10, 200, 150]})
    assert answer.status_code == 200 and answer.json()["masks"][0]["rle"]["size"] == [192, 256]
    drawn = np.zeros((192, 256), bool)
    drawn[100:150, 150:250] = True
    new = {"label": "dog", "rle": coco_rle(drawn)}
    assert client.put("/api/images/1/annotations", json=[scaled, new]).status_code == 200
    part = json.loads((tmp_path / "out" / ".coco_parts" / "img01.png.json").read_text())
    assert (part["height"], part["width"]) == (192, 256) and len(part["annotations"]) == 2
    cv2.imwrite(str(target), replacement)  # back to 128 x 96 while the server is down
    restarted = _client(data, ckpt, tmp_path).get("/api/images/1/annotations").json()
    assert [o["rle"]["size"] for o in restarted] == [[96, 128], [96, 128]]
    assert rle_to_mask(restarted[0]["rle"])[10:40, 20:60].all()


def test_failures_answer_with_a_detail(ckpt: Path, tmp_path: Path) -> None:
    data = _data(tmp_path, 3)
    client = _client(data, ckpt, tmp_path)
    points = [[float(i % 128), float(i % 96)] for i in range(20000)]
    answer = client.post("/api/images/0/predict", json={"points": points})
    assert answer.status_code == 422 and answer.json()["detail"].startswith("points: at most")
    # labels left out: every point positive, as in the Python API
    implicit = client.post("/api/images/0/predict", json={"points": [[40, 30], [90, 60]]})
    explicit = client.post(
        "/api/images/0/predict", json={"points": [[40, 30], [90, 60]], "labels": [1, 1]}
    )
    assert implicit.status_code == 200
    assert [m["rle"] for m in implicit.json()["masks"]] == [
        m["rle"] for m in explicit.json()["masks"]
    ]
    (data / "img02.png").unlink()  # deleted while the server runs
    for answer in (
        client.post("/api/images/2/predict", json={"points": [[5, 5]]}),
        client.get("/api/images/2/file"),
        client.put("/api/images/2/annotations", json=[]),
    ):
        assert answer.status_code == 409
        assert answer.json()["detail"].startswith("id: cannot read img02.png")
    assert len(client.get("/api/images").json()) == 3  # the listing still answers
    obj = [{"label": "cat", "rle": coco_rle(_box(10, 40, 20, 60))}]
    assert client.put("/api/images/0/annotations", json=obj).status_code == 200
    (tmp_path / "out" / "instances.json").write_text('{"images": [')  # broken by hand
    answer = client.get("/api/export?format=coco")
    assert answer.status_code == 500
    assert "instances.json exists but cannot be read" in answer.json()["detail"]


def test_exports_are_portable_and_instances_json_honours_the_umask(
    ckpt: Path, tmp_path: Path
) -> None:
    data = _data(tmp_path)
    client = _client(data, ckpt, tmp_path)
    obj = [{"label": "dog", "rle": coco_rle(_box(10, 40, 20, 60))}]
    assert client.put("/api/images/0/annotations", json=obj).status_code == 200
    with zipfile.ZipFile(io.BytesIO(client.get("/api/export?format=yolo").content)) as zf:
        yaml_text = zf.read("data.yaml").decode()
    assert "path:" not in yaml_text and str(tmp_path) not in yaml_text
    assert "train: images" in yaml_text and "1: dog" in yaml_text
    old = os.umask(0o022)
    try:
        assert client.get("/api/export?format=coco").status_code == 200
    finally:
        os.umask(old)
    mode = (tmp_path / "out" / "instances.json").stat().st_mode & 0o777
    assert mode == 0o644, oct(mode)
    labelme = (tmp_path / "out" / "img00.json").stat().st_mode & 0o777
    assert mode == labelme  # as every other label file
