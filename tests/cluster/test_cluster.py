"""Cluster runs on a real local Ray cluster: a head node and one more worker node, started by
``ray start`` on 127.0.0.1 for this module and stopped after it.

Every run is compared file by file with the single-process run on the same images, boxes and
weights: the label files must be byte-identical (only ``summary.json`` differs: timings).
"""

from __future__ import annotations

import filecmp
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

# Ray reads its auth settings when imported: the driver, the head and the worker node share a
# token made here (a fresh machine has no ~/.ray/auth_token).
os.environ["RAY_AUTH_MODE"] = "token"
os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(16))
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
pytest.importorskip("ray")
pytest.importorskip("ray.data")

from front_helpers import TINY_CONFIG, save_random_checkpoint
from samkit.annotate import auto_annotate
from samkit.errors import SamkitError

N_IMAGES = 8
FORMATS = "yolo,coco,labelme"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ray(*args: str, env: dict[str, str]) -> None:
    ray_bin = Path(sys.executable).with_name("ray")
    subprocess.run([str(ray_bin), *args], env=env, check=True, capture_output=True, timeout=300)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``ray start --head`` plus one worker node on 127.0.0.1; yields the address."""
    port = _free_port()
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token"}
    address = f"127.0.0.1:{port}"
    common = ["--node-ip-address=127.0.0.1", "--disable-usage-stats"]
    try:
        _ray("start", "--head", f"--port={port}", "--num-cpus=2", "--include-dashboard=false",
             *common, env=env)  # fmt: skip
        _ray("start", f"--address={address}", "--num-cpus=1", *common, env=env)
        yield address
    finally:
        subprocess.run([str(Path(sys.executable).with_name("ray")), "stop", "--force"],
                       env=env, capture_output=True, timeout=120)  # fmt: skip


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Images with drawn objects, their YOLO box labels (the box source), one unreadable
    image, a tiny random-weight SAM, and the single-process run's labels."""
    root = tmp_path_factory.mktemp("cluster")
    images, boxes = root / "images", root / "boxes"
    images.mkdir()
    boxes.mkdir()
    rng = np.random.default_rng(0)
    for i in range(N_IMAGES):
        img = np.full((120, 160, 3), 235, np.uint8)
        x, y = int(rng.integers(5, 90)), int(rng.integers(5, 50))
        cv2.rectangle(img, (x, y), (x + 60, y + 55), (200, 40, 40), -1)
        cv2.circle(img, (120, 80), 25, (40, 40, 200), -1)
        cv2.imwrite(str(images / f"im{i}.png"), img)
        lines = [f"0 {(x + 30) / 160:.5f} {(y + 27) / 120:.5f} {61 / 160:.5f} {56 / 120:.5f}",
                 f"1 {120 / 160:.5f} {80 / 120:.5f} {51 / 160:.5f} {51 / 120:.5f}"]  # fmt: skip
        (boxes / f"im{i}.txt").write_text("\n".join(lines) + "\n")
    (images / "broken.png").write_bytes(b"not an image")
    ckpt = save_random_checkpoint(root / "sam.pth", TINY_CONFIG, seed=3)
    paths = {"images": images, "boxes": boxes, "ckpt": ckpt, "root": root}
    paths["local"] = root / "local"
    _annotate(paths, paths["local"], "local")
    return paths


def _annotate(data: dict[str, Path], out: Path, engine: str, **ray: Any) -> Any:
    return auto_annotate(
        data["images"], det_model=data["boxes"], sam_model=data["ckpt"], device="cpu",
        output_dir=out, format=FORMATS, engine=engine, ray=ray or None, progress=False,
        verbose=False,
    )  # fmt: skip


def _assert_same_labels(a: Path, b: Path) -> None:
    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    assert files_a == files_b
    compared = [f for f in files_a if f.name != "summary.json"]
    assert len(compared) >= 3 * N_IMAGES  # yolo + labelme + coco part per image
    for f in compared:
        assert filecmp.cmp(a / f, b / f, shallow=False), f"{f} differs"


def test_cluster_labels_identical_to_single_process(data: dict[str, Path], cluster: str) -> None:
    out = data["root"] / "ray"
    summary = _annotate(data, out, "ray", address=cluster, encoder_actors=1,
                        decoder_actors=2, cpus_per_actor=0.5)  # fmt: skip
    print("stage seconds per image:", summary.stage_seconds)
    assert summary.annotated == N_IMAGES and summary.objects == 2 * N_IMAGES
    assert summary.errors == 1 and "broken.png" in summary.failures[0]["image"]
    assert set(summary.stage_seconds) == {"detect", "encode", "decode"}
    _assert_same_labels(data["local"], out)
    again = _annotate(data, out, "ray", address=cluster)  # resume: nothing left to do
    assert again.skipped == N_IMAGES and again.annotated == 0


def test_bad_ray_options_fail_before_work(data: dict[str, Path]) -> None:
    with pytest.raises(SamkitError, match="encoder_actors"):
        _annotate(data, data["root"] / "bad", "ray", encoder_actors=0)
    with pytest.raises(SamkitError, match="unknown Ray option"):
        _annotate(data, data["root"] / "bad", "ray", encoders=2)
    with pytest.raises(SamkitError, match="engine must be"):
        _annotate(data, data["root"] / "bad", "spark")


def _stage_pids(name: str) -> list[int]:
    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    return [int(line.split()[0]) for line in out.splitlines() if f"MapBatches({name})" in line]


@pytest.mark.slow
def test_killed_actor_is_replaced_and_output_identical(data: dict[str, Path], cluster: str) -> None:
    out = data["root"] / "ray_kill"
    killed: list[int] = []

    def killer() -> None:  # kill the decoder actor once it has written its first image
        deadline = time.time() + 240
        while time.time() < deadline and not killed:
            pids = _stage_pids("DecodeWriteStage")
            if pids and any(out.glob("*.txt")):
                os.kill(pids[0], signal.SIGKILL)
                killed.append(pids[0])
            time.sleep(0.05)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    summary = _annotate(data, out, "ray", address=cluster, cpus_per_actor=0.5)
    thread.join(timeout=5)
    assert killed, "the decoder actor was never seen running"
    assert summary.annotated + summary.skipped == N_IMAGES
    _assert_same_labels(data["local"], out)


def _done(out: Path) -> int:
    """Images whose every label file (YOLO, LabelMe, COCO part) is written."""
    stems = [p.stem for p in out.glob("*.txt")]
    return sum((out / f"{s}.json").is_file() and (out / ".coco_parts" / f"{s}.png.json").is_file()
               for s in stems)  # fmt: skip


@pytest.mark.slow
def test_killed_driver_resumes(data: dict[str, Path], cluster: str) -> None:
    out = data["root"] / "ray_driver"
    code = (
        "import sys; from samkit.annotate import auto_annotate; "
        "auto_annotate(sys.argv[1], det_model=sys.argv[2], sam_model=sys.argv[3], device='cpu', "
        f"output_dir=sys.argv[4], format={FORMATS!r}, engine='ray', "
        "ray={'address': sys.argv[5], 'cpus_per_actor': 0.5}, progress=False)"
    )
    args = [str(data[k]) for k in ("images", "boxes", "ckpt")] + [str(out), cluster]
    proc = subprocess.Popen([sys.executable, "-c", code, *args], env=os.environ.copy())
    try:
        deadline = time.time() + 240
        while time.time() < deadline and _done(out) < 2:
            assert proc.poll() is None, "the driver ended before it could be killed"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    done_before = _done(out)
    assert done_before >= 2
    assert not (out / "instances.json").exists()  # the run never finished
    summary = _annotate(data, out, "ray", address=cluster, cpus_per_actor=0.5)
    assert summary.skipped == done_before  # complete images are not redone
    assert summary.skipped + summary.annotated == N_IMAGES
    _assert_same_labels(data["local"], out)


@pytest.mark.slow
def test_embed_on_cluster_fills_the_store_val_reads(data: dict[str, Path], cluster: str) -> None:
    from samkit import SAM
    from samkit.embed import embed
    from samkit.embeddings import EmbeddingStore, encode_cached, model_key

    local = embed(data["images"], data["ckpt"], data["root"] / "emb_local", progress=False)
    ray = embed(data["images"], data["ckpt"], data["root"] / "emb_ray", engine="ray",
                ray={"address": cluster, "cpus_per_actor": 0.5}, progress=False)  # fmt: skip
    for s in (local, ray):
        assert (s.encoded, s.errors, s.skipped) == (N_IMAGES, 1, 0), str(s)
    files = sorted(p.name for p in (data["root"] / "emb_ray" / ray.model_key).iterdir())
    assert len(files) == N_IMAGES and local.model_key == ray.model_key
    for name in files:
        a = np.load(data["root"] / "emb_local" / local.model_key / name)
        b = np.load(data["root"] / "emb_ray" / ray.model_key / name)
        for k in ("features", "original_size", "input_size"):
            np.testing.assert_array_equal(a[k], b[k])
    # A reader of the store (val, train, label) gets hits, no encoder pass.
    front = SAM(data["ckpt"], device="cpu")
    store = EmbeddingStore(data["root"] / "emb_ray", model_key(front))
    image = data["images"] / "im0.png"
    encode_cached(front.engine, store, lambda: pytest.fail("encoder ran"), store.key(image))
    assert store.hits == 1
    again = embed(data["images"], data["ckpt"], data["root"] / "emb_ray", engine="ray",
                  ray={"address": cluster}, progress=False)  # fmt: skip
    assert again.skipped == N_IMAGES and again.encoded == 0


@pytest.mark.slow
def test_predict_everything_folder_on_cluster(data: dict[str, Path], cluster: str) -> None:
    everything = ["points_per_side=4", "pred_iou_thresh=0", "stability_score_thresh=0"]
    runs = {}
    for engine in ("local", "ray"):
        extra = [f"address={cluster}", "cpus_per_actor=0.5"] if engine == "ray" else []
        cmd = [sys.executable, "-m", "samkit.cli", "predict", f"model={data['ckpt']}",
               f"source={data['images']}", "device=cpu", f"project={data['root']}",
               f"name=everything_{engine}", f"engine={engine}", *everything, *extra]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-2000:]
        runs[engine] = data["root"] / f"everything_{engine}"
    labels = sorted((runs["local"] / "labels").iterdir())
    assert len(labels) == N_IMAGES
    assert any(p.read_text() for p in labels)  # masks were found
    for p in labels:
        assert p.read_bytes() == (runs["ray"] / "labels" / p.name).read_bytes()
    preds = [json.loads((r / "predictions.json").read_text()) for r in runs.values()]
    assert preds[0]["counts"] == preds[1]["counts"]
    assert [im["file"] for im in preds[0]["images"]] == [im["file"] for im in preds[1]["images"]]
