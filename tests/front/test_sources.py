"""Sources: files, folders, globs, lists, arrays, PIL, URL, video; stream=True memory."""

from __future__ import annotations

import gc
import http.server
import threading
import tracemalloc
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from front_helpers import TINY_CONFIG, save_random_checkpoint, write_image
from samkit import SAM
from samkit.errors import SourceError
from samkit.sources import count_items, iter_source

BOX = [5, 5, 40, 30]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("sources")
    return SAM(save_random_checkpoint(root / "tiny.pt", TINY_CONFIG, seed=2), device="cpu")


@pytest.fixture
def folder(tmp_path):
    write_image(tmp_path / "a.png", 40, 60, seed=1)
    write_image(tmp_path / "b.jpg", 50, 50, seed=2)
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / ".hidden.png").write_bytes(b"")
    (tmp_path / "sub").mkdir()
    write_image(tmp_path / "sub" / "c.png", 30, 45, seed=3)
    return tmp_path


def test_folder_reports_non_image_and_goes_on(tiny, folder, caplog):
    results = tiny.predict(folder, bboxes=BOX)
    assert [Path(r.path).name for r in results] == ["a.png", "b.jpg"]
    assert [r.masks.shape for r in results] == [(1, 40, 60), (1, 50, 50)]
    assert [Path(s["path"]).name for s in tiny.last_run.skipped] == ["notes.txt"]
    assert "notes.txt" in caplog.text
    recursive = tiny.predict(folder, bboxes=BOX, recursive=True)
    assert [Path(r.path).name for r in recursive] == ["a.png", "b.jpg", "c.png"]


def test_folder_skips_an_image_the_model_cannot_take(tiny, folder, caplog):
    """A 10000 x 1 image has no rows left at the model's input size: in a folder it is
    reported with its path and skipped; alone it is a SourceError naming its size."""
    cv2.imwrite(str(folder / "thin.png"), np.full((1, 10000, 3), 128, np.uint8))
    results = tiny.predict(folder, bboxes=BOX)
    assert [Path(r.path).name for r in results] == ["a.png", "b.jpg"]
    skipped = {Path(s["path"]).name: s["error"] for s in tiny.last_run.skipped}
    assert set(skipped) == {"notes.txt", "thin.png"} and "too thin" in skipped["thin.png"]
    assert "thin.png" in caplog.text
    with pytest.raises(SourceError, match="10000x1 pixels"):
        tiny.predict(folder / "thin.png", bboxes=BOX)


def test_glob_list_array_pil(tiny, folder):
    assert len(tiny.predict(str(folder / "*.png"), bboxes=BOX)) == 1
    rgb = write_image(folder / "d.png", 32, 48, seed=4)
    bgr = np.ascontiguousarray(rgb[:, :, ::-1])
    mixed = tiny.predict([folder / "a.png", bgr, Image.fromarray(rgb)], bboxes=BOX)
    assert len(mixed) == 3
    assert np.array_equal(mixed[1].orig_img, bgr)  # arrays are BGR; orig_img gives BGR back
    assert np.array_equal(mixed[2].orig_img, bgr)  # PIL is RGB
    assert np.array_equal(mixed[1].image, rgb) and np.array_equal(mixed[2].image, rgb)  # RGB
    # The same pixels give the same masks whichever way they came in.
    assert np.array_equal(np.asarray(mixed[1].masks), np.asarray(mixed[2].masks))
    gray = tiny.predict(rgb[:, :, 0], bboxes=BOX)[0]
    assert gray.orig_img.shape == (32, 48, 3)


def test_single_bad_sources_raise(tiny, folder):
    with pytest.raises(SourceError, match="does not exist"):
        tiny.predict(folder / "missing.png", bboxes=BOX)
    with pytest.raises(SourceError, match="cannot read"):
        tiny.predict(folder / "notes.txt", bboxes=BOX)
    with pytest.raises(SourceError, match="must be a path"):
        tiny.predict(42, bboxes=BOX)
    with pytest.raises(SourceError, match="uint8"):
        list(iter_source(np.zeros((4, 4, 3), dtype=np.float32)))


def test_exif_orientation_applied(tmp_path):
    rgb = np.zeros((20, 40, 3), dtype=np.uint8)
    rgb[:, :10] = 255
    img = Image.fromarray(rgb)
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    img.save(tmp_path / "rot.jpg", exif=exif.tobytes())
    (item,) = list(iter_source(tmp_path / "rot.jpg"))
    assert item.image.shape == (40, 20, 3)
    assert item.image[:10].mean() > 200 and item.image[-10:].mean() < 50  # white band on top


def test_http_url(tmp_path):
    write_image(tmp_path / "web.png", 24, 36)

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(tmp_path), **kwargs)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/web.png"
        (item,) = list(iter_source(url))
        assert item.image.shape == (24, 36, 3) and item.path == url
        with pytest.raises(SourceError, match="cannot download"):
            list(iter_source(url.replace("web.png", "nope.png")))
    finally:
        server.shutdown()


def test_video_frame_by_frame(tiny, tmp_path):
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 5, (64, 48))
    assert writer.isOpened()
    for i in range(5):
        writer.write(
            np.ascontiguousarray(write_image(tmp_path / "f.png", 48, 64, seed=i)[:, :, ::-1])
        )
    writer.release()
    assert count_items(path) == 5
    results = tiny.predict(path, points=[[[30, 20]], [[10, 10]]])
    assert [r.frame for r in results] == [0, 1, 2, 3, 4]
    assert all(r.masks.shape == (2, 48, 64) and r.path == str(path) for r in results)
    streamed = tiny.predict(path, points=[[[30, 20]], [[10, 10]]], stream=True)
    assert not isinstance(streamed, list)
    assert [r.frame for r in streamed] == [0, 1, 2, 3, 4]


def test_stream_memory_stays_flat(tiny, tmp_path):
    for i in range(16):
        write_image(tmp_path / f"img{i:02d}.png", 96, 128, seed=i)
    stream = tiny.predict(tmp_path, points=[[[30, 20]], [[60, 50]]], stream=True, progress=False)
    tracemalloc.start()
    try:
        peaks = []
        for i, result in enumerate(stream):
            assert result.masks.shape == (2, 96, 128)
            del result
            gc.collect()
            if i in (3, 15):
                peaks.append(tracemalloc.get_traced_memory()[0])
    finally:
        tracemalloc.stop()
    growth = peaks[1] - peaks[0]
    print(f"traced memory after image 4: {peaks[0]} B, after image 16: {peaks[1]} B")
    # One image's results are ~120 kB (image + masks + logits); 12 more must not accumulate.
    assert growth < 100_000
