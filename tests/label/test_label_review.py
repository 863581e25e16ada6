"""``samkit label``'s per-image status and review over the HTTP API: set, read back, counted,
kept across a restart in ``status.json``; bad bodies named."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from label_helpers import region_checkpoint, write_images
from samkit.masks import coco_rle, rle_to_mask

pytest.importorskip("fastapi")
pytest.importorskip("httpx")
from fastapi.testclient import TestClient

from samkit.label import build

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
BASE = "http://127.0.0.1:8765"  # the host the annotator serves (its Host check)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("label_review")
    return {"ckpt": region_checkpoint(tmp / "tiny.pth"),
            "images": write_images(tmp / "images", 4)}  # fmt: skip


def _client(setup: dict[str, Any], out: Path, **options: Any) -> TestClient:
    server = build(setup["images"][0].parent, str(setup["ckpt"]), "cat,dog", output_dir=out,
                   cache_dir=out.parent / "cache", prefetch=0, **options)  # fmt: skip
    return TestClient(server.app, base_url=BASE)


def _object(label: str = "cat") -> dict[str, Any]:
    mask = np.zeros((96, 128), bool)
    mask[10:40, 20:60] = True
    return {"label": label, "rle": coco_rle(mask)}


def _statuses(client: TestClient) -> list[str]:
    return [im["status"] for im in client.get("/api/images").json()]


def test_status_and_review_round_trip(setup: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "out"
    client = _client(setup, out)
    assert _statuses(client) == ["todo"] * 4
    progress = client.get("/api/progress").json()
    assert progress["total"] == 4 and progress["counts"]["todo"] == 4

    done = client.put("/api/images/0/status", json={"status": "done", "comment": "checked"})
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "done" and done.json()["comment"] == "checked"
    assert (
        client.put("/api/images/1/annotations", json=[_object(), _object("dog")]).status_code == 200
    )
    assert client.put("/api/images/3/status", json={"status": "no_objects"}).status_code == 200
    assert _statuses(client) == ["done", "in_progress", "todo", "no_objects"]
    assert client.put("/api/images/3/annotations", json=[_object()]).status_code == 200
    assert _statuses(client)[3] == "in_progress"  # it has objects now

    rejected = client.post("/api/images/1/review",
                           json={"verdict": "reject", "comment": "tail cut", "object": 1})  # fmt: skip
    assert rejected.status_code == 200, rejected.text
    assert rejected.json()["status"] == "needs_fix"
    assert rejected.json()["objects"] == {"1": {"verdict": "reject", "comment": "tail cut"}}
    counts = client.get("/api/progress").json()["counts"]
    assert counts == {"todo": 1, "in_progress": 1, "done": 1, "skipped": 0, "no_objects": 0,
                      "needs_fix": 1}  # fmt: skip
    accepted = client.post("/api/images/2/review", json={"verdict": "accept", "comment": ""})
    assert accepted.json()["status"] == "done"
    assert accepted.json()["review"] == {"verdict": "accept", "comment": ""}

    # Kept in status.json beside the labels and read back by a restarted server.
    stored = json.loads((out / "status.json").read_text())
    assert stored["img01.png"]["status"] == "needs_fix"
    again = _client(setup, out)
    assert _statuses(again) == ["done", "needs_fix", "done", "in_progress"]
    listing = again.get("/api/images").json()
    assert listing[0]["review"]["comment"] == "checked"
    assert listing[1]["review"]["objects"]["1"]["comment"] == "tail cut"

    # One object fewer: the verdict on the object that is gone is dropped.
    assert again.put("/api/images/1/annotations", json=[_object()]).status_code == 200
    assert again.get("/api/images").json()[1]["review"]["objects"] == {}


def test_bad_status_and_review_bodies_are_named(setup: dict[str, Any], tmp_path: Path) -> None:
    client = _client(setup, tmp_path / "out")
    client.put("/api/images/0/annotations", json=[_object()])
    cases = [
        ("put", "/api/images/0/status", {"status": "finished"}, "status:"),
        ("put", "/api/images/0/status", {"status": "done", "comment": 3}, "comment:"),
        ("put", "/api/images/0/status", {"status": "done", "by": "x"}, "by:"),
        ("put", "/api/images/0/status", [1], "body:"),
        ("post", "/api/images/0/review", {"verdict": "maybe"}, "verdict:"),
        ("post", "/api/images/0/review", {"verdict": "reject", "object": 1}, "object:"),
        ("post", "/api/images/0/review", {"verdict": "reject", "object": True}, "object:"),
    ]
    for method, path, body, field in cases:
        answer = getattr(client, method)(path, json=body)
        assert answer.status_code == 422, (body, answer.text)
        assert answer.json()["detail"].startswith(field), answer.json()
    assert client.put("/api/images/9/status", json={"status": "done"}).status_code == 404
    assert not (tmp_path / "out" / "status.json").exists()  # nothing stored by bad requests

    # A status.json that cannot be read is moved aside (kept), not overwritten.
    (tmp_path / "out" / "status.json").write_text("{broken")
    client = _client(setup, tmp_path / "out")
    assert _statuses(client)[0] == "in_progress"
    kept = list((tmp_path / "out").glob("status.json.unreadable-*"))
    assert len(kept) == 1 and kept[0].read_text() == "{broken"
    (tmp_path / "out" / "status.json").write_text('{"img01.png": {"status": "lost"}}')
    assert _statuses(_client(setup, tmp_path / "out"))[1] == "todo"  # an unknown status


def test_import_coco_rle_polygons_and_crowd(setup: dict[str, Any], tmp_path: Path) -> None:
    mask_util = pytest.importorskip("pycocotools.mask")
    from pycocotools.coco import COCO

    a = np.zeros((96, 128), np.uint8)
    a[10:50, 20:70] = 1
    rle = mask_util.encode(np.asfortranarray(a))
    rle["counts"] = rle["counts"].decode()  # compressed, as pycocotools writes JSON
    crowd = np.zeros((96, 128), np.uint8)
    crowd[60:90, 5:120] = 1
    flat = crowd.ravel(order="F")
    edges = np.flatnonzero(np.diff(flat)) + 1
    runs = np.diff(np.r_[0, edges, flat.size]).tolist()  # uncompressed counts (zeros first)
    assert flat[0] == 0
    polygon = [[30.0, 20.0, 90.0, 20.0, 90.0, 70.0, 30.0, 70.0]]
    data = {
        "images": [{"id": 1, "file_name": "img00.png", "height": 96, "width": 128},
                   {"id": 2, "file_name": "sub/img01.png", "height": 96, "width": 128},
                   {"id": 3, "file_name": "img02.png", "height": 96, "width": 128},
                   {"id": 4, "file_name": "elsewhere.png", "height": 96, "width": 128}],
        "categories": [{"id": 1, "name": "cat"}, {"id": 7, "name": "person"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "segmentation": rle, "iscrowd": 0},
            {"id": 2, "image_id": 2, "category_id": 1, "segmentation": polygon, "iscrowd": 0},
            {"id": 3, "image_id": 2, "category_id": 7, "iscrowd": 1,
             "segmentation": {"size": [96, 128], "counts": runs}},
            {"id": 4, "image_id": 3, "category_id": 1, "segmentation": polygon},
            {"id": 5, "image_id": 1, "category_id": 1, "segmentation": [[1, 2]]},
        ],
    }  # fmt: skip
    source = tmp_path / "instances.json"
    source.write_text(json.dumps(data))
    out = tmp_path / "out"
    first = _client(setup, out)  # image 2 has labels of its own before the import
    assert first.put("/api/images/2/annotations", json=[_object("dog")]).status_code == 200

    server = build(setup["images"][0].parent, str(setup["ckpt"]), "cat,dog", output_dir=out,
                   cache_dir=tmp_path / "cache", prefetch=0, import_coco=source)  # fmt: skip
    assert "person" in server.store.classes
    assert any("annotation 5" in p for p in server.store.problems)  # a 1-point polygon
    assert any("elsewhere.png" in p for p in server.store.problems)
    assert "1 kept their own labels" in server.store.notes[0]
    client = TestClient(server.app, base_url=BASE)
    got0 = client.get("/api/images/0/annotations").json()
    assert [o["label"] for o in got0] == ["cat"] and "crowd" not in got0[0]
    np.testing.assert_array_equal(rle_to_mask(got0[0]["rle"]), a.astype(bool))
    got1 = client.get("/api/images/1/annotations").json()
    assert [(o["label"], o.get("crowd", False)) for o in got1] == [("cat", False), ("person", True)]
    want_poly = mask_util.decode(mask_util.merge(mask_util.frPyObjects(polygon, 96, 128)))
    np.testing.assert_array_equal(rle_to_mask(got1[0]["rle"]), want_poly.astype(bool))
    np.testing.assert_array_equal(rle_to_mask(got1[1]["rle"]), crowd.astype(bool))
    assert [o["label"] for o in client.get("/api/images/2/annotations").json()] == ["dog"]

    # A save keeps the crowd flag: in the COCO export, and read back after a restart.
    assert client.put("/api/images/1/annotations", json=got1).status_code == 200
    exported = tmp_path / "export.json"
    exported.write_bytes(client.get("/api/export?format=coco").content)
    coco = COCO(str(exported))
    anns = coco.loadAnns(coco.getAnnIds())
    assert sorted((a["iscrowd"], int(coco.annToMask(a).sum())) for a in anns) == sorted(
        [(0, int(want_poly.sum())), (1, int(crowd.sum())), (0, 30 * 40)])  # fmt: skip
    again = _client(setup, out)  # no import: the saved image only
    assert [o.get("crowd", False) for o in again.get("/api/images/1/annotations").json()] == [
        False, True]  # fmt: skip
    assert again.get("/api/images/0/annotations").json() == []

    source.write_text("{not json")
    with pytest.raises(ValueError, match="import_coco"):
        build(setup["images"][0].parent, str(setup["ckpt"]), "cat", output_dir=out,
              cache_dir=tmp_path / "cache", import_coco=source)  # fmt: skip


def test_leases_hand_two_annotators_different_images_and_names_are_kept(
    setup: dict[str, Any], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    app = _client(setup, out).app
    ann = TestClient(app, base_url=BASE, headers={"X-Client": "tab-a", "X-Annotator": "ann"})
    bob = TestClient(app, base_url=BASE, headers={"X-Client": "tab-b", "X-Annotator": "bob"})
    assert ann.post("/api/images/0/lease").json()["id"] == 0
    taken = bob.post("/api/images/0/lease")
    assert taken.status_code == 409 and "ann" in taken.json()["detail"]
    assert bob.get("/api/images").json()[0]["leased_by"] == "ann"
    assert ann.get("/api/images").json()[0]["leased_by"] is None  # its own lease

    # "next" from the same place hands each client another image still to do.
    first = bob.post("/api/next", json={"after": 0}).json()["id"]
    second = ann.post("/api/next", json={"after": 0}).json()["id"]
    assert (first, second) == (1, 2)  # ann's lease on 0 moved to 2: 0 is free again
    assert bob.post("/api/next", json={"after": 1}).json()["id"] == 3
    assert TestClient(app, base_url=BASE, headers={"X-Client": "tab-c"}).post(
        "/api/next", json={"after": 3}).json()["id"] in (0, 1)  # fmt: skip

    # Names on edits: the last editor of an image, who set its status, who reviewed.
    assert ann.put("/api/images/2/annotations", json=[_object()]).status_code == 200
    assert bob.put("/api/images/2/status", json={"status": "done"}).status_code == 200
    reviewed = ann.post("/api/images/2/review", json={"verdict": "reject", "object": 0})
    record = reviewed.json()
    assert record["edited_by"] == "ann" and record["status_by"] == "bob"
    assert record["objects"]["0"]["by"] == "ann"
    assert json.loads((out / "status.json").read_text())["img02.png"]["edited_by"] == "ann"

    assert ann.post("/api/next", json={"after": "x"}).status_code == 422
    no_id = TestClient(app, base_url=BASE).post("/api/images/1/lease")
    assert no_id.status_code == 422 and no_id.json()["detail"].startswith("X-Client")
