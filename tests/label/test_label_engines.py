"""``samkit label`` on every engine the entrance makes: GrabCut (no weights) and an exported ONNX
folder predict and save; ONNX masks equal torch's within one pixel; segment everything on an
engine without that capability is a 422 naming why. ``samkit embed`` and ``engine='ray'`` refuse
GrabCut with a samkit error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from fastapi.testclient import TestClient

from label_helpers import region_checkpoint, write_images
from samkit.errors import SamkitError
from samkit.label import build
from samkit.masks import rle_to_mask

POINT = {"points": [[40.0, 30.0]], "labels": [1], "multimask": False}
BOX = {"box": [10, 12, 70, 60], "multimask": False}


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return write_images(tmp_path_factory.mktemp("engines_data") / "images", 2)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return region_checkpoint(tmp_path_factory.mktemp("engines_ckpt") / "tiny.pth")


def _client(images: list[Path], model: str, tmp: Path) -> TestClient:
    server = build(images[0].parent, model, "cat,dog", output_dir=tmp / "out",
                   cache_dir=tmp / "cache", prefetch=0)  # fmt: skip
    return TestClient(server.app)


def _mask(answer: Any) -> np.ndarray:
    assert answer.status_code == 200, answer.text
    (first,) = answer.json()["masks"]
    return rle_to_mask(first["rle"])


def _save(client: TestClient, mask_answer: Any) -> None:
    rle = mask_answer.json()["masks"][0]["rle"]
    saved = client.put("/api/images/0/annotations", json=[{"label": "cat", "rle": rle}])
    assert saved.status_code == 200, saved.text
    assert client.get("/api/images/0/annotations").json() == [{"label": "cat", "rle": rle}]


def _within_one_pixel(got: np.ndarray, want: np.ndarray) -> bool:
    """Every differing pixel lies on ``want``'s boundary band (one pixel either side)."""
    kernel = np.ones((3, 3), np.uint8)
    w = want.astype(np.uint8)
    band = cv2.dilate(w, kernel).astype(bool) & ~cv2.erode(w, kernel).astype(bool)
    return not bool(((got ^ want) & ~band).any())


def test_label_runs_grabcut(images: list[Path], tmp_path: Path) -> None:
    client = _client(images, "grabcut", tmp_path)
    answer = client.post("/api/images/0/predict", json=BOX)
    mask = _mask(answer)
    assert mask.shape == (96, 128) and 0 < mask.mean() < 1
    assert mask[12:61, 10:71].sum() >= 0.9 * mask.sum()  # the object is inside the box
    _save(client, answer)
    refused = client.post("/api/images/0/proposals", json={"kind": "everything"})
    assert refused.status_code == 422
    assert "needs a SAM model" in refused.json()["detail"]


def test_label_runs_an_onnx_export_like_torch(
    images: list[Path], ckpt: Path, tmp_path: Path
) -> None:
    pytest.importorskip("onnxruntime")
    from samkit.export import export

    folder = tmp_path / "tiny_onnx"
    export(str(ckpt), format="onnx", output=folder)
    onnx = _client(images, str(folder), tmp_path / "onnx")
    torch_client = _client(images, str(ckpt), tmp_path / "torch")
    for body in (POINT, BOX):
        got = _mask(onnx.post("/api/images/0/predict", json=body))
        want = _mask(torch_client.post("/api/images/0/predict", json=body))
        assert 0 < want.mean() < 1, "the comparison is about a real mask"
        assert _within_one_pixel(got, want)
    _save(onnx, onnx.post("/api/images/0/predict", json=BOX))


def test_embed_and_ray_refuse_grabcut(images: list[Path], tmp_path: Path) -> None:
    from samkit.cluster.runtime import model_spec
    from samkit.embed import embed

    with pytest.raises(SamkitError, match="samkit embed needs a SAM model"):
        embed(images[0].parent, "grabcut", tmp_path / "store", progress=False)
    with pytest.raises(SamkitError, match="engine='ray' needs a SAM model"):
        model_spec("grabcut", None)
