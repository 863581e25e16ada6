"""``samkit label`` through its HTTP API: predictions equal ``SamPredictor.predict`` on the same
prompts and weights, saves survive a killed server, COCO exports read back by pycocotools equal
the committed masks, concurrent clients, bad requests, the token off localhost."""

from __future__ import annotations

import io
import json
import socket
import threading
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from label_helpers import region_checkpoint, start_server, write_images
from samkit.build import build_sam
from samkit.embeddings import EmbeddingStore
from samkit.masks import coco_rle, rle_to_mask
from samkit.predictor import SamPredictor
from samkit.sources import read_image

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

fastapi = pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")
from fastapi.testclient import TestClient as _TestClient  # noqa: E402

from samkit.label import build  # noqa: E402


class TestClient(_TestClient):
    """A client that addresses the annotator as its printed URL does (``Host: 127.0.0.1``)."""

    def __init__(self, app: Any, **kwargs: Any) -> None:
        kwargs.setdefault("base_url", "http://127.0.0.1:8765")
        super().__init__(app, **kwargs)


CLASSES = "cat,dog"


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return region_checkpoint(tmp_path_factory.mktemp("label_ckpt") / "tiny.pth")


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return write_images(tmp_path_factory.mktemp("label_data") / "images", 4)


@pytest.fixture(scope="module")
def reference(ckpt: Path) -> SamPredictor:
    return SamPredictor(build_sam(ckpt))


def _server(images: list[Path], ckpt: Path, tmp: Path, **options: Any) -> Any:
    return build(
        images[0].parent, str(ckpt), CLASSES, output_dir=tmp / "out",
        cache_dir=tmp / "cache", **options,
    )  # fmt: skip


def _masks(answer: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    masks = np.stack([rle_to_mask(m["rle"]) for m in answer["masks"]])
    return masks, np.array([m["score"] for m in answer["masks"]], np.float32)


def test_predict_equals_sam_predictor(
    images: list[Path], ckpt: Path, reference: SamPredictor, tmp_path: Path
) -> None:
    client = TestClient(_server(images, ckpt, tmp_path, prefetch=0).app)
    listing = client.get("/api/images").json()
    assert [im["name"] for im in listing] == [p.name for p in images]
    review = {"status": "todo", "comment": "", "review": None, "objects": {}}
    assert listing[1] == {"id": 1, "name": "img01.png", "width": 128, "height": 96,
                          "annotated": False, "blocked": None, "status": "todo",
                          "review": review, "leased_by": None}  # fmt: skip
    reference.set_image(read_image(images[1]))
    cases = [
        {"points": [[40.5, 30]], "labels": [1], "box": None, "multimask": True},
        {"points": [[40, 30], [90, 70]], "labels": [1, 0], "multimask": False},
        {"box": [10, 12, 70, 60], "multimask": False},
        {"points": [[50, 40]], "labels": [1], "box": [10, 12, 70, 60], "multimask": True},
    ]
    for body in cases:
        answer = client.post("/api/images/1/predict", json=body)
        assert answer.status_code == 200, answer.text
        got, got_scores = _masks(answer.json())
        pts = np.array(body["points"]) if "points" in body else None
        labels = np.array(body["labels"]) if "labels" in body else None
        box = np.array(body["box"]) if body.get("box") else None
        want, scores, _ = reference.predict(pts, labels, box, multimask_output=body["multimask"])
        assert got.shape == want.shape == (3 if body["multimask"] else 1, 96, 128)
        np.testing.assert_array_equal(got, want)
        np.testing.assert_allclose(got_scores, scores, rtol=0, atol=1e-6)
    # mask_input: the best candidate's low-res logits of the previous prediction
    first = client.post("/api/images/1/predict", json=cases[0]).json()
    refined = client.post("/api/images/1/predict", json={**cases[1], "mask_input": first["id"]})
    _, scores0, low0 = reference.predict(np.array([[40.5, 30]]), np.array([1]))
    want, scores, _ = reference.predict(
        np.array(cases[1]["points"]), np.array([1, 0]), mask_input=low0[[scores0.argmax()]],
        multimask_output=False,
    )  # fmt: skip
    np.testing.assert_array_equal(_masks(refined.json())[0], want)
    assert 0 < want.mean() < 1  # the comparison is about a real mask


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ([1, 2], "body"),
        ({"points": [[1, 2]], "labels": [1], "pointz": 1}, "pointz"),
        ({"points": [[1, 2]], "labels": [1, 0]}, "labels"),
        ({"points": [[1, 2]] * 1001}, "points"),
        ({"points": [[1, 2], [3]], "labels": [1, 1]}, "points[1]"),
        ({"points": [[1, "a"]], "labels": [1]}, "points[0][1]"),
        ({"points": [[1, 2]], "labels": [2]}, "labels[0]"),
        ({"points": [[500, 2]], "labels": [1]}, "points[0]"),
        ({"box": [10, 10, 5, 20]}, "box"),
        ({"box": [1, 2, 3]}, "box"),
        ({}, "points"),
        ({"points": [[1, 2]], "labels": [1], "multimask": "yes"}, "multimask"),
        ({"points": [[1, 2]], "labels": [1], "mask_input": "nope"}, "mask_input"),
    ],
)
def test_bad_predict_requests_name_the_field(
    images: list[Path], ckpt: Path, tmp_path_factory: pytest.TempPathFactory, body: Any, field: str
) -> None:
    client = _bad_client(images, ckpt, tmp_path_factory)
    answer = client.post("/api/images/0/predict", json=body)
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"].startswith(field) or f"'{field}'" in answer.json()["detail"]


_CLIENTS: dict[str, TestClient] = {}


def _bad_client(
    images: list[Path], ckpt: Path, tmp_path_factory: pytest.TempPathFactory
) -> TestClient:
    if "bad" not in _CLIENTS:
        tmp = tmp_path_factory.mktemp("label_bad")
        _CLIENTS["bad"] = TestClient(_server(images, ckpt, tmp, prefetch=0).app)
    return _CLIENTS["bad"]


def test_bad_annotations_and_other_requests(
    images: list[Path], ckpt: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    client = _bad_client(images, ckpt, tmp_path_factory)
    good = coco_rle(np.pad(np.ones((10, 10), bool), ((5, 81), (5, 113))))
    table = [
        ({"label": "cat"}, "annotations"),
        ([{"label": "cow", "rle": good}], "annotations[0].label"),
        ([{"label": "cat", "rle": good}, {"label": "dog"}], "annotations[1].rle"),
        ([{"label": "cat", "rle": {"size": [5, 5], "counts": "5"}}], "annotations[0].rle.size"),
        ([{"label": "cat", "rle": {**good, "counts": "0"}}], "annotations[0].rle.counts"),
        ([{"label": "cat", "rle": coco_rle(np.zeros((96, 128), bool))}], "annotations[0].rle"),
        ([{"label": "cat", "rle": good, "x": 1}], "annotations[0]"),
    ]
    for body, field in table:
        answer = client.put("/api/images/0/annotations", json=body)
        assert answer.status_code == 422, (body, answer.text)
        detail = answer.json()["detail"]
        assert detail.startswith(field if field != "annotations" else "body"), detail
    assert client.get("/api/images/0/annotations").json() == []  # nothing was stored
    assert client.get("/api/images/9/annotations").status_code == 404
    assert "id" in client.post("/api/images/9/predict", json={}).json()["detail"]
    answer = client.get("/api/export?format=voc")
    assert answer.status_code == 422 and answer.json()["detail"].startswith("format")


def test_saves_survive_a_killed_server_and_export_to_coco(
    images: list[Path], ckpt: Path, tmp_path: Path
) -> None:
    """Two objects committed, the server process killed (SIGKILL) and started again: the objects
    are there, and COCO read back by pycocotools gives the committed masks exactly."""
    pytest.importorskip("pycocotools")
    from pycocotools.coco import COCO

    args = [str(images[0].parent), f"model={ckpt}", f"classes={CLASSES}",
            f"output_dir={tmp_path / 'out'}", f"cache_dir={tmp_path / 'cache'}"]  # fmt: skip
    proc, url = start_server(args)
    try:
        with httpx.Client(base_url=url, timeout=60) as client:
            drawn = []
            for body in ({"box": [8, 8, 70, 60]}, {"points": [[30, 30]], "labels": [1]},
                         {"points": [[90, 60]], "labels": [1]}):  # fmt: skip
                pred = client.post("/api/images/2/predict", json=body).json()
                drawn += [m["rle"] for m in pred["masks"] if 0 < rle_to_mask(m["rle"]).mean() < 1]
            assert drawn, "no prompt gave a partial mask"
            holed = np.zeros((96, 128), bool)
            holed[20:80, 70:120] = True
            holed[40:60, 85:100] = False  # a hole survives the round trip
            committed = [
                {"label": "dog", "rle": drawn[0]},
                {"label": "cat", "rle": coco_rle(holed)},
            ]
            assert client.put("/api/images/2/annotations", json=committed).status_code == 200
    finally:
        proc.kill()
        proc.wait()
    assert (tmp_path / "out" / "img02.txt").is_file()
    assert (tmp_path / "out" / "img02.json").is_file()
    proc, url = start_server(args)
    try:
        with httpx.Client(base_url=url, timeout=60) as client:
            assert client.get("/api/images/2/annotations").json() == committed
            assert [im["annotated"] for im in client.get("/api/images").json()] == [
                False, False, True, False]  # fmt: skip
            coco_json = client.get("/api/export?format=coco").json()
    finally:
        proc.kill()
        proc.wait()
    path = tmp_path / "exported.json"
    path.write_text(json.dumps(coco_json))
    coco = COCO(str(path))
    (image,) = coco.dataset["images"]
    assert image["file_name"] == "img02.png"
    anns = coco.loadAnns(coco.getAnnIds(imgIds=[image["id"]]))
    names = {c["id"]: c["name"] for c in coco.dataset["categories"]}
    assert [names[a["category_id"]] for a in anns] == ["dog", "cat"]
    for ann, obj in zip(anns, committed, strict=True):
        np.testing.assert_array_equal(coco.annToMask(ann).astype(bool), rle_to_mask(obj["rle"]))


def test_yolo_and_labelme_exports(images: list[Path], ckpt: Path, tmp_path: Path) -> None:
    client = TestClient(_server(images, ckpt, tmp_path, prefetch=0).app)
    box = np.zeros((96, 128), bool)
    box[10:50, 20:60] = True
    client.put("/api/images/1/annotations", json=[{"label": "dog", "rle": coco_rle(box)}])
    with zipfile.ZipFile(io.BytesIO(client.get("/api/export?format=yolo").content)) as zf:
        assert sorted(zf.namelist()) == ["data.yaml", "img01.txt"]
        cls, *xy = zf.read("img01.txt").decode().split()
        assert cls == "1" and len(xy) >= 8
        assert "dog" in zf.read("data.yaml").decode()
    with zipfile.ZipFile(io.BytesIO(client.get("/api/export?format=labelme").content)) as zf:
        record = json.loads(zf.read("img01.json"))
        assert [s["label"] for s in record["shapes"]] == ["dog"]


def test_existing_labels_are_loaded_not_overwritten(
    images: list[Path], ckpt: Path, tmp_path: Path
) -> None:
    """A YOLO-seg file in the output folder and a LabelMe JSON next to an image are objects at
    start; their files are untouched until that image is saved."""
    out = tmp_path / "out"
    out.mkdir()
    yolo = out / "img00.txt"
    yolo.write_text("1 0.1 0.1 0.5 0.1 0.5 0.5 0.1 0.5\n")
    (out / "data.yaml").write_text(
        "path: .\ntrain: images\nval: images\nnames:\n  0: horse\n  1: dog\n"
    )
    data = tmp_path / "data"
    data.mkdir()
    for p in images:
        (data / p.name).write_bytes(p.read_bytes())
    labelme = data / "img03.json"
    shape = {"label": "bird", "points": [[10, 10], [60, 10], [60, 40]], "group_id": None,
             "shape_type": "polygon", "flags": {}}  # fmt: skip
    labelme.write_text(json.dumps({"version": "5.4.1", "flags": {}, "shapes": [shape],
        "imagePath": "img03.png", "imageData": None, "imageHeight": 96, "imageWidth": 128}))  # fmt: skip
    data_yaml = out / "data.yaml"
    before = {
        yolo: yolo.read_bytes(),
        labelme: labelme.read_bytes(),
        data_yaml: data_yaml.read_bytes(),
    }
    server = build(data, str(ckpt), CLASSES, output_dir=out, cache_dir=tmp_path / "c", prefetch=0)
    client = TestClient(server.app)
    # data.yaml's ids first (the YOLO file uses them), then the new classes
    assert client.get("/api/config").json()["classes"] == ["horse", "dog", "cat", "bird"]
    (dog,) = client.get("/api/images/0/annotations").json()
    assert dog["label"] == "dog"
    mask = rle_to_mask(dog["rle"])
    assert mask[30, 30] and not mask[60, 100] and 1800 < mask.sum() < 2200  # 51 x 38 pixels
    (bird,) = client.get("/api/images/3/annotations").json()
    assert bird["label"] == "bird" and rle_to_mask(bird["rle"])[12, 55]
    flags = [im["annotated"] for im in client.get("/api/images").json()]
    assert flags == [True, False, False, True]
    assert all(p.read_bytes() == b for p, b in before.items())
    client.put("/api/images/0/annotations", json=[dog, {"label": "cat", "rle": bird["rle"]}])
    lines = yolo.read_text().splitlines()
    assert [line.split()[0] for line in lines] == ["1", "2"]  # the loaded dog is kept, cat is 2
    assert "cat" in (out / "data.yaml").read_text() and "horse" in (out / "data.yaml").read_text()
    assert labelme.read_bytes() == before[labelme]  # files beside the images are never written


def test_embeddings_cached_on_disk_and_encoded_ahead(
    images: list[Path], ckpt: Path, tmp_path: Path
) -> None:
    server = _server(images, ckpt, tmp_path, prefetch=2)
    client = TestClient(server.app)
    seg = server.segmenter
    assert client.get("/api/images/0/file").status_code == 200  # starts encoding 0, 1, 2
    body = {"points": [[30, 30]], "labels": [1]}
    first = client.post("/api/images/1/predict", json=body).json()
    assert seg.wait_idle(timeout=120)
    for path in images[:3]:
        seg.state(EmbeddingStore.key(path), lambda: pytest.fail("encoded twice"))
    assert seg.encodes == 3
    assert len(list((tmp_path / "cache").rglob("*.npz"))) == 3
    again = _server(images, ckpt, tmp_path, prefetch=0)  # a restarted server: from disk
    answer = TestClient(again.app).post("/api/images/1/predict", json=body).json()
    assert again.segmenter.encodes == 0
    assert [m["rle"] for m in answer["masks"]] == [m["rle"] for m in first["masks"]]


def test_concurrent_clients_on_different_images(
    images: list[Path], ckpt: Path, reference: SamPredictor, tmp_path: Path
) -> None:
    server = _server(images, ckpt, tmp_path, prefetch=0)
    client = TestClient(server.app)
    results: dict[int, Any] = {}
    errors: list[BaseException] = []

    def annotate(image_id: int) -> None:
        try:
            saved = []
            for k in range(3):
                pt = [[20.0 + 25 * k, 20.0 + 10 * image_id]]
                pred = client.post(f"/api/images/{image_id}/predict",
                                   json={"points": pt, "labels": [1]}).json()  # fmt: skip
                best = max(pred["masks"], key=lambda m: m["score"])
                saved.append({"label": "cat" if k % 2 else "dog", "rle": best["rle"], "pt": pt})
                body = [{"label": s["label"], "rle": s["rle"]} for s in saved]
                assert (
                    client.put(f"/api/images/{image_id}/annotations", json=body).status_code == 200
                )
            results[image_id] = saved
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=annotate, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for image_id, saved in results.items():
        stored = client.get(f"/api/images/{image_id}/annotations").json()
        assert stored == [{"label": s["label"], "rle": s["rle"]} for s in saved]
        reference.set_image(read_image(images[image_id]))
        for s in saved:
            masks, scores, _ = reference.predict(np.array(s["pt"]), np.array([1]))
            np.testing.assert_array_equal(rle_to_mask(s["rle"]), masks[scores.argmax()])
    part = json.loads((tmp_path / "out" / ".coco_parts" / "img03.png.json").read_text())
    assert len(part["annotations"]) == 3


def test_token_required_off_localhost(images: list[Path], ckpt: Path, tmp_path: Path) -> None:
    local = _server(images, ckpt, tmp_path, prefetch=0)
    assert local.token is None
    assert TestClient(local.app).get("/api/images").status_code == 200
    remote = _server(images, ckpt, tmp_path, prefetch=0, host="0.0.0.0")
    token = remote.token
    assert token and len(token) >= 20
    client = TestClient(remote.app)
    for path in ("/", "/api/images", "/api/images/0/annotations", "/api/export?format=coco",
                 "/static/label.js"):  # fmt: skip
        assert client.get(path).status_code == 401
        assert client.get(path, headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert client.get(path, headers={"Authorization": f"Bearer {token}"}).status_code == 200
    answer = client.post("/api/images/0/predict", json={"box": [1, 1, 50, 50]})
    assert answer.status_code == 401 and "Bearer" in answer.json()["detail"]
    assert client.get(f"/?token={token}").status_code == 200  # the page link


def test_segment_everything_and_detector_proposals(
    images: list[Path], ckpt: Path, reference: SamPredictor, tmp_path: Path
) -> None:
    """Proposals equal the automatic mask generator's masks (same settings) and, for detector
    boxes from a COCO JSON, ``SamPredictor.predict(box=...)`` with the detector's class."""
    from samkit.automatic import SamAutomaticMaskGenerator

    boxes = [[10, 12, 70, 60], [60, 30, 120, 90]]
    coco = {"images": [{"id": 7, "file_name": "img02.png", "height": 96, "width": 128}],
            "annotations": [{"id": i + 1, "image_id": 7, "category_id": c, "iscrowd": 0,
                             "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]]}
                            for i, (b, c) in enumerate(zip(boxes, [3, 5], strict=True))],
            "categories": [{"id": 3, "name": "dog"}, {"id": 5, "name": "car"}]}  # fmt: skip
    det = tmp_path / "boxes.json"
    det.write_text(json.dumps(coco))
    client = TestClient(_server(images, ckpt, tmp_path, prefetch=0, det_model=det).app)
    assert client.get("/api/config").json()["detector"] is True
    found = client.post("/api/images/2/proposals", json={"kind": "detector"}).json()["proposals"]
    reference.set_image(read_image(images[2]))
    assert [p["label"] for p in found] == ["dog", None]  # "car" is not a class of this run
    for p, b in zip(found, boxes, strict=True):
        want, _, _ = reference.predict(box=np.array(b, float), multimask_output=False)
        np.testing.assert_array_equal(rle_to_mask(p["rle"]), want[0])

    settings = {"points_per_side": 4, "pred_iou_thresh": 0.0, "stability_score_thresh": 0.0}
    found = client.post("/api/images/2/proposals", json={"kind": "everything", **settings})
    records = SamAutomaticMaskGenerator(reference.model, **settings).generate(read_image(images[2]))
    assert len(records) >= 2
    got = sorted(json.dumps(p["rle"]) for p in found.json()["proposals"])
    assert got == sorted(json.dumps(coco_rle(r["segmentation"])) for r in records)
    for body, field in (({"kind": "all"}, "kind"), ({"kind": "everything", "points_per_side": 0},
                        "points_per_side"), ({"kind": "everything", "x": 1}, "body")):  # fmt: skip
        answer = client.post("/api/images/2/proposals", json=body)
        assert answer.status_code == 422 and answer.json()["detail"].startswith(field)
    plain = TestClient(_server(images, ckpt, tmp_path, prefetch=0).app)
    answer = plain.post("/api/images/0/proposals", json={"kind": "detector"})
    assert answer.status_code == 422 and "det_model" in answer.json()["detail"]


def test_cli_usage_errors(images: list[Path], capsys: pytest.CaptureFixture[str]) -> None:
    from samkit.cli import main

    assert main(["label", str(images[0].parent)]) == 2
    assert "needs classes=" in capsys.readouterr().err
    assert main(["label", str(images[0].parent), "classes=a", "prefetch=-1"]) == 1
    assert "prefetch must be >= 0" in capsys.readouterr().err
    assert main(["label", str(images[0].parent), "clases=a"]) == 2
    assert "Did you mean 'classes'" in capsys.readouterr().err


def test_unreadable_images_are_reported_not_fatal(
    images: list[Path], ckpt: Path, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for p in images[:2]:
        (data / p.name).write_bytes(p.read_bytes())
    (data / "broken.png").write_bytes(b"not a png")
    server = build(
        data, str(ckpt), CLASSES, output_dir=tmp_path / "o", cache_dir=tmp_path / "c", prefetch=0
    )
    assert [e.rel for e in server.store.entries] == ["img00.png", "img01.png"]
    assert any("broken.png" in p for p in server.store.problems)
    (data / "img01.png").write_bytes(b"gone bad")  # changed after the start
    client = TestClient(server.app)
    answer = client.post("/api/images/1/predict", json={"points": [[5, 5]], "labels": [1]})
    assert answer.status_code == 409 and answer.json()["detail"].startswith("id:")
    assert client.post("/api/images/0/predict", json={"box": [1, 1, 9, 9]}).status_code == 200


def test_if_match_guards_edits_of_the_same_image(
    images: list[Path], ckpt: Path, tmp_path: Path
) -> None:
    """Two annotators read image 0; the second save with the old version gets 412 and nothing
    of the first is lost. Without If-Match the last writer wins."""
    client = TestClient(_server(images, ckpt, tmp_path, prefetch=0).app)
    a = np.zeros((96, 128), bool)
    a[5:20, 5:30] = True
    b = np.zeros((96, 128), bool)
    b[50:70, 60:90] = True
    first = client.get("/api/images/0/annotations")
    version = first.headers["ETag"]
    one = [{"label": "cat", "rle": coco_rle(a)}]
    saved = client.put("/api/images/0/annotations", json=one, headers={"If-Match": version})
    assert saved.status_code == 200 and saved.headers["ETag"] != version
    other = [{"label": "dog", "rle": coco_rle(b)}]
    stale = client.put("/api/images/0/annotations", json=other, headers={"If-Match": version})
    assert stale.status_code == 412 and stale.json()["detail"].startswith("If-Match")
    assert client.get("/api/images/0/annotations").json() == one
    now = client.get("/api/images/0/annotations").headers["ETag"]
    assert now == saved.headers["ETag"]
    both = one + other
    assert (
        client.put("/api/images/0/annotations", json=both, headers={"If-Match": now}).status_code
        == 200
    )
    assert client.put("/api/images/0/annotations", json=other).status_code == 200  # no If-Match
    assert client.get("/api/images/0/annotations").json() == other


def test_requests_for_other_hosts_or_origins_are_refused(
    images: list[Path], ckpt: Path, tmp_path: Path
) -> None:
    """DNS rebinding (``Host: evil.example``) and cross-site pages (``Origin``) are refused on
    every route, reads and writes; the page's own requests pass."""
    client = TestClient(_server(images, ckpt, tmp_path, prefetch=0).app)
    box = np.zeros((96, 128), bool)
    box[10:50, 20:60] = True
    body = [{"label": "dog", "rle": coco_rle(box)}]
    evil = {"Host": "evil.example:8765"}
    for headers in (evil, {"Host": "evil.example"}, {"Origin": "http://evil.example"},
                    {"Origin": "null"}, {"Origin": "http://127.0.0.1:9999"}):  # fmt: skip
        for method, path in (("GET", "/api/images"), ("GET", "/api/images/0/file"),
                             ("GET", "/"), ("GET", "/api/export?format=coco")):  # fmt: skip
            answer = client.request(method, path, headers=headers)
            assert answer.status_code in (400, 403), (headers, path, answer.status_code)
            assert answer.json()["detail"].split(":")[0] in ("host", "origin")
        answer = client.put("/api/images/0/annotations", json=body, headers=headers)
        assert answer.status_code in (400, 403)
    assert client.get("/api/images/0/annotations").json() == []  # nothing was written
    page = {"Origin": "http://127.0.0.1:8765"}  # what the browser sends from the page
    assert client.put("/api/images/0/annotations", json=body, headers=page).status_code == 200
    for host in ("localhost:8765", "127.0.0.1", "[::1]:8765"):
        assert client.get("/api/images", headers={"Host": host}).status_code == 200
    # bound to every interface: the token is not enough for another host name
    remote = _server(images, ckpt, tmp_path, prefetch=0, host="0.0.0.0")
    auth = {"Authorization": f"Bearer {remote.token}"}
    client = TestClient(remote.app)
    assert client.get("/api/images", headers={**auth, **evil}).status_code == 400
    assert client.get("/api/images", headers={**auth, "Host": "10.1.2.3:8765"}).status_code == 200
    assert (
        client.get("/api/images", headers={**auth, "Host": socket.gethostname()}).status_code == 200
    )


def test_empty_token_off_localhost_is_refused(
    images: list[Path], ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from samkit.cli import main
    from samkit.errors import ArgumentError

    with pytest.raises(ArgumentError, match="token: an empty token"):
        _server(images, ckpt, tmp_path, prefetch=0, host="0.0.0.0", token="")
    code = main(["label", str(images[0].parent), f"model={ckpt}", "classes=a", "host=0.0.0.0",
                 "token=", f"output_dir={tmp_path / 'o'}"])  # fmt: skip
    assert code == 1 and "token: an empty token" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()  # refused before anything was written
