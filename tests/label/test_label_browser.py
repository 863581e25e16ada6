"""``samkit label`` in a real browser: Debian's headless Chromium driven by Selenium.

Open the page, click on an object, check the mask in a screenshot, commit it with a class, go
to the next image, export. Screenshots are kept under the test's ``tmp_path``
(``01_open.png`` ... ``04_next.png``), and copied to ``$SAMKIT_TEST_ARTIFACTS`` when it is set.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from label_helpers import ThreadServer, chromium_driver, region_checkpoint, write_images
from samkit.build import build_sam
from samkit.masks import coco_rle, rle_to_mask
from samkit.predictor import SamPredictor
from samkit.sources import read_image

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pytest.importorskip("selenium")
if not (shutil.which("chromium") and shutil.which("chromedriver")):
    pytest.skip("Debian's chromium and chromium-driver are not installed", allow_module_level=True)

from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By

from samkit.label import build


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("label_browser")
    ckpt = region_checkpoint(tmp / "tiny.pth")
    images = write_images(tmp / "images", 3, height=192, width=256)
    server = build(tmp / "images", str(ckpt), "cat,dog", output_dir=tmp / "out",
                   cache_dir=tmp / "cache")  # fmt: skip
    http = ThreadServer(server.app)
    driver: Any = chromium_driver()
    try:
        yield {"server": server, "url": http.url, "driver": driver, "images": images,
               "ckpt": ckpt}  # fmt: skip
    finally:
        driver.quit()
        http.stop()
        server.segmenter.close()


def _wait(driver: Any, script: str, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = driver.execute_script(script)
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for: {script}")


def _shot(driver: Any, path: Path) -> np.ndarray:
    driver.save_screenshot(str(path))
    return cv2.imread(str(path))[:, :, ::-1].astype(np.int16)


def _click_point(predictor: SamPredictor) -> tuple[tuple[int, int], np.ndarray]:
    """A point whose best candidate is a proper part of the image (5-60 %)."""
    for y in range(24, 192, 24):
        for x in range(24, 256, 24):
            masks, scores, _ = predictor.predict(np.array([[x, y]]), np.array([1]))
            best = masks[scores.argmax()]
            if 0.05 < best.mean() < 0.6:
                return (x, y), best
    raise AssertionError("no point gives a partial mask")


def _screen(driver: Any) -> Callable[[float, float], tuple[float, float]]:
    """Image pixel -> screenshot pixel (the canvas' offset plus the page's view transform)."""
    rect = driver.execute_script("return document.getElementById('canvas').getBoundingClientRect()")
    view = driver.execute_script("return window.samkit.view")

    def to_screen(x: float, y: float) -> tuple[float, float]:
        scale = view["scale"]
        return rect["left"] + view["ox"] + x * scale, rect["top"] + view["oy"] + y * scale

    return to_screen


def test_click_commit_next_export_in_chromium(setup: dict[str, Any], tmp_path: Path) -> None:
    driver, images = setup["driver"], setup["images"]
    driver.get(setup["url"])
    _wait(driver, "return window.samkit && window.samkit.image && window.samkit.cur === 0")
    assert "1 / 3" in driver.find_element(By.ID, "progress").text
    assert "Enter" in driver.find_element(By.ID, "help").text  # shortcuts shown on the page
    before = _shot(driver, tmp_path / "01_open.png")

    predictor = SamPredictor(build_sam(setup["ckpt"]))
    predictor.set_image(read_image(images[0]))
    (x, y), want = _click_point(predictor)
    to_screen = _screen(driver)
    canvas = driver.find_element(By.ID, "canvas")
    size = canvas.size
    sx, sy = to_screen(x + 0.5, y + 0.5)
    rect = canvas.rect
    ActionChains(driver).move_to_element_with_offset(
        canvas,
        round(sx - rect["x"] - size["width"] / 2),
        round(sy - rect["y"] - size["height"] / 2),
    ).click().perform()
    _wait(driver, "return window.samkit.latencies.length === 1")
    state = driver.execute_script(
        "const s = window.samkit; return {points: s.points, rle: s.pred.masks[s.cand].rle}"
    )
    px, py = state["points"][0]["x"], state["points"][0]["y"]
    assert abs(px - x - 0.5) <= 1 and abs(py - y - 0.5) <= 1
    masks, scores, _ = predictor.predict(np.array([[px, py]]), np.array([1]))
    want = masks[scores.argmax()]
    np.testing.assert_array_equal(rle_to_mask(state["rle"]), want)  # the best candidate shown
    after = _shot(driver, tmp_path / "02_mask.png")

    # Mask pixels are tinted on screen, the others are not (away from the drawn point).
    changed = np.abs(after - before).sum(axis=2) > 30
    ys, xs = np.mgrid[0:192:4, 0:256:4]
    inside, outside = [], []
    for iy, ix in zip(ys.ravel(), xs.ravel(), strict=True):
        if (ix - px) ** 2 + (iy - py) ** 2 < 15**2:
            continue
        if 0 < ix < 255 and 0 < iy < 191 and want[iy - 1 : iy + 2, ix - 1 : ix + 2].all():
            u, v = to_screen(ix + 0.5, iy + 0.5)
            inside.append(changed[int(v), int(u)])
        elif not want[max(iy - 1, 0) : iy + 2, max(ix - 1, 0) : ix + 2].any():
            u, v = to_screen(ix + 0.5, iy + 0.5)
            outside.append(changed[int(v), int(u)])
    assert len(inside) > 50 and len(outside) > 50
    assert np.mean(inside) > 0.95 and np.mean(outside) < 0.02, (np.mean(inside), np.mean(outside))

    # Right click adds a negative point; Z undoes it (the mask of the positive point comes back).
    ActionChains(driver).move_to_element_with_offset(canvas, 10, 10).context_click().perform()
    _wait(driver, "return window.samkit.latencies.length === 2")
    assert [p["label"] for p in driver.execute_script("return window.samkit.points")] == [1, 0]
    ActionChains(driver).send_keys("z").perform()
    _wait(driver, "return window.samkit.latencies.length === 3")
    assert len(driver.execute_script("return window.samkit.points")) == 1

    # Class 2 ("dog") then Enter: committed and saved on the server.
    ActionChains(driver).send_keys("2").send_keys("\ue007").perform()
    _wait(driver, "return window.samkit.objects.length === 1 && window.samkit.saving === 0 "
                  "&& window.samkit.images[0].annotated")  # fmt: skip
    stored = setup["server"].store.get(0)
    assert [o["label"] for o in stored] == ["dog"]
    np.testing.assert_array_equal(rle_to_mask(stored[0]["rle"]), want)
    _shot(driver, tmp_path / "03_committed.png")
    assert "1 annotated" in driver.find_element(By.ID, "progress").text

    # Tab cycles the 3 candidates of a single click; a drag draws a box prompt.
    ActionChains(driver).send_keys("\ue00c").perform()  # Esc
    ActionChains(driver).move_to_element_with_offset(canvas, 0, 0).click().perform()
    _wait(driver, "return window.samkit.latencies.length === 4")
    first = driver.execute_script("return window.samkit.cand")
    ActionChains(driver).send_keys("\ue004").perform()  # Tab
    assert driver.execute_script("return window.samkit.cand") == (first + 1) % 3
    ActionChains(driver).send_keys("\ue00c").perform()
    x1, y1 = to_screen(40, 30)
    x2, y2 = to_screen(200, 150)
    ActionChains(driver).move_to_element_with_offset(
        canvas,
        round(x1 - rect["x"] - size["width"] / 2),
        round(y1 - rect["y"] - size["height"] / 2),
    ).click_and_hold().move_by_offset(round(x2 - x1) // 2, round(y2 - y1) // 2).move_by_offset(
        round(x2 - x1) - round(x2 - x1) // 2, round(y2 - y1) - round(y2 - y1) // 2
    ).release().perform()
    _wait(driver, "return window.samkit.latencies.length === 5")
    box = driver.execute_script("return window.samkit.box")
    assert np.allclose(box, [40, 30, 200, 150], atol=1.5), box
    shown = driver.execute_script("const s = window.samkit; return s.pred.masks[s.cand].rle")
    want_box, _, _ = predictor.predict(box=np.array(box), multimask_output=False)
    np.testing.assert_array_equal(rle_to_mask(shown), want_box[0])
    ActionChains(driver).send_keys("\ue00c").perform()

    # Next image (D), then export COCO from the page.
    ActionChains(driver).send_keys("d").perform()
    _wait(driver, "return window.samkit.cur === 1 && window.samkit.image")
    assert "2 / 3" in driver.find_element(By.ID, "progress").text
    _shot(driver, tmp_path / "04_next.png")
    driver.find_element(By.CSS_SELECTOR, "[data-export=coco]").click()
    _wait(driver, "return window.samkit.exported === 'coco'")
    coco = json.loads((setup["server"].store.output_dir / "instances.json").read_text())
    assert [a["category_id"] for a in coco["annotations"]] == [2]
    assert [im["file_name"] for im in coco["images"]] == ["img00.png"]
    assert all((tmp_path / f).stat().st_size > 1000 for f in ("01_open.png", "02_mask.png"))
    errors = [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors, errors  # no script errors, no failed requests
    keep = os.environ.get("SAMKIT_TEST_ARTIFACTS")  # e.g. a CI artefact folder
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        for shot in sorted(tmp_path.glob("*.png")):
            shutil.copy(shot, Path(keep) / f"label_{shot.name}")


def test_relabel_proposals_message_and_tab_in_chromium(setup: dict[str, Any]) -> None:
    """1-9 on a selected object relabels it and leaves the active class alone; finding no
    proposals says so (no "Y accepts" prompt); Tab on a focused button moves the focus on."""
    driver = setup["driver"]
    driver.get(setup["url"])
    _wait(driver, "return window.samkit && window.samkit.image && window.samkit.cur === 1")
    ActionChains(driver).send_keys("a").perform()  # back to image 0 and its dog
    _wait(driver, "const s = window.samkit; return s.cur === 0 && s.objects.length === 1")
    ActionChains(driver).send_keys("2").perform()  # nothing selected: the active class
    assert driver.execute_script("return window.samkit.label") == "dog"
    driver.execute_script("window.samkit.selected = 0")
    ActionChains(driver).send_keys("1").perform()
    _wait(driver, "return window.samkit.objects[0].label === 'cat' && window.samkit.saving === 0")
    assert driver.execute_script("return window.samkit.label") == "dog"  # still the active class
    assert [o["label"] for o in setup["server"].store.get(0)] == ["cat"]

    driver.execute_script("""
        const real = window.fetch;
        window.fetch = (url, opts) => String(url).endsWith('/proposals')
            ? Promise.resolve(new Response('{"proposals": []}', {status: 200}))
            : real(url, opts);""")  # fmt: skip
    ActionChains(driver).send_keys("\ue00c").send_keys("e").perform()
    _wait(driver, "return !document.getElementById('status').textContent.endsWith('...')")
    text = driver.find_element(By.ID, "status").text
    assert "no proposals" in text and "Y accepts" not in text, text

    # Proposals: a click inside one accepts that one, with its class (a detector's) if it has one.
    first, second = _rect(0, 40, 0, 60), _rect(120, 180, 150, 250)
    answer = json.dumps({"proposals": [{"rle": coco_rle(first), "score": 0.9, "label": None},
                                       {"rle": coco_rle(second), "score": 0.8, "label": "dog"}]})  # fmt: skip
    driver.execute_script("""
        const real = window.fetch, answer = arguments[0];
        window.fetch = (url, opts) => String(url).endsWith('/proposals')
            ? Promise.resolve(new Response(answer, {status: 200})) : real(url, opts);""", answer)  # fmt: skip
    ActionChains(driver).send_keys("e").perform()
    _wait(driver, "return window.samkit.proposals.length === 2")
    filtered = """const f = document.getElementById(arguments[0]);
        f.value = arguments[1]; f.dispatchEvent(new Event('input'));
        return window.samkit.proposals.map((p) => p.score);"""  # fmt: skip
    assert driver.execute_script(filtered, "min-score", "0.85") == [0.9]
    assert driver.execute_script(filtered, "min-score", "0") == [0.9, 0.8]
    assert driver.execute_script(filtered, "min-area", "3000") == [0.8]  # 60 x 40 is too small
    assert driver.execute_script(filtered, "min-area", "0") == [0.9, 0.8]
    canvas = driver.find_element(By.ID, "canvas")
    rect, size, to_screen = canvas.rect, canvas.size, _screen(driver)
    sx, sy = to_screen(200, 150)
    ActionChains(driver).move_to_element_with_offset(
        canvas,
        round(sx - rect["x"] - size["width"] / 2),
        round(sy - rect["y"] - size["height"] / 2),
    ).click().perform()
    _wait(driver, "const s = window.samkit; return s.objects.length === 2 && s.saving === 0")
    stored = setup["server"].store.get(0)
    assert [o["label"] for o in stored] == ["cat", "dog"]
    np.testing.assert_array_equal(rle_to_mask(stored[1]["rle"]), second)
    assert driver.execute_script("return window.samkit.proposals.length") == 1
    assert not driver.execute_script("return window.samkit.points.length")  # no point added
    ActionChains(driver).send_keys("n").perform()

    driver.execute_script("document.getElementById('next').focus()")
    ActionChains(driver).send_keys("\ue004").perform()  # Tab
    assert driver.execute_script("return document.activeElement.id") != "next"


def _rect(y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    mask = np.zeros((192, 256), bool)
    mask[y0:y1, x0:x1] = True
    return mask


def _swept(pts: list[list[float]], radius: float) -> np.ndarray:
    """Pixels whose centre lies within ``radius`` of the polyline ``pts`` (the page's rule)."""
    cy, cx = np.mgrid[0:192, 0:256] + 0.5
    out = np.zeros((192, 256), bool)
    segs = [(pts[0], pts[0])] if len(pts) == 1 else list(itertools.pairwise(pts))
    for a, b in segs:
        dx, dy = b[0] - a[0], b[1] - a[1]
        len2 = dx * dx + dy * dy
        t = np.clip(((cx - a[0]) * dx + (cy - a[1]) * dy) / len2, 0, 1) if len2 else 0.0
        out |= (cx - a[0] - t * dx) ** 2 + (cy - a[1] - t * dy) ** 2 <= radius * radius
    return out


def _saved(server: Any, image_id: int, count: int) -> list[np.ndarray]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        stored = server.store.get(image_id)
        if len(stored) == count:
            return [rle_to_mask(o["rle"]) for o in stored]
        time.sleep(0.05)
    raise AssertionError(
        f"image {image_id} never had {count} objects: {server.store.get(image_id)}"
    )


def test_undo_brush_view_review_in_chromium(setup: dict[str, Any], tmp_path: Path) -> None:
    """Undo / redo of a delete, a brush stroke and an erase saved to the exact pixels, hide and
    opacity on the canvas, status and review set on the page and read back from the server."""
    driver, server = setup["driver"], setup["server"]
    a, b = _rect(20, 80, 30, 110), _rect(100, 160, 150, 230)
    server.store.put(2, [("cat", a), ("dog", b)])
    driver.get(setup["url"])
    _wait(driver, "return window.samkit && window.samkit.image")
    driver.execute_script("window.samkit.fn.open(2)")
    _wait(
        driver, "const s = window.samkit; return s.cur === 2 && s.image && s.objects.length === 2"
    )
    idle = "return window.samkit.saving === 0"

    # Delete, undo (the object is saved again), redo (deleted again), undo.
    driver.execute_script("window.samkit.selected = 0")
    ActionChains(driver).send_keys("\ue017").perform()  # Delete
    assert [m.sum() for m in _saved(server, 2, 1)] == [b.sum()]
    ActionChains(driver).send_keys("z").perform()
    restored = _saved(server, 2, 2)
    np.testing.assert_array_equal(restored[0], a)
    np.testing.assert_array_equal(restored[1], b)
    ActionChains(driver).key_down("\ue008").send_keys("z").key_up("\ue008").perform()  # Shift+Z
    _saved(server, 2, 1)
    ActionChains(driver).send_keys("z").perform()
    _saved(server, 2, 2)
    _wait(driver, idle)
    # A save that finds no server is retried until it lands.
    driver.execute_script("""
        const real = window.fetch;
        let fail = 2;
        window.fetch = (url, opts) => opts && opts.method === 'PUT' && fail-- > 0
            ? Promise.reject(new TypeError('Failed to fetch')) : real(url, opts);""")  # fmt: skip
    driver.execute_script("window.samkit.selected = 1")
    ActionChains(driver).send_keys("\ue017").perform()  # Delete
    assert [m.sum() for m in _saved(server, 2, 1)] == [a.sum()]
    assert driver.execute_script("return window.samkit.retries") == 2
    ActionChains(driver).send_keys("z").perform()
    _saved(server, 2, 2)
    _wait(driver, idle)
    driver.execute_script("window.samkit.fn.relabel(1, 'cat')")  # relabel, then undo it
    _wait(driver, "return window.samkit.saving === 0")
    assert [o["label"] for o in server.store.get(2)] == ["cat", "cat"]
    ActionChains(driver).send_keys("z").perform()
    _wait(driver, "return window.samkit.objects[1].label === 'dog' && window.samkit.saving === 0")
    assert [o["label"] for o in server.store.get(2)] == ["cat", "dog"]

    # Another annotator saves the image meanwhile: both new objects survive (merged per object).
    c, d = _rect(2, 12, 240, 250), _rect(170, 185, 10, 30)
    server.store.put(2, [("cat", a), ("dog", b), ("cat", c)])
    driver.execute_script(
        "const s = window.samkit; s.fn.setObjects(s.objects.concat([s.fn.makeObject('dog', arguments[0])]))",
        coco_rle(d),
    )
    merged = _saved(server, 2, 4)
    for got, want in zip(merged, [a, b, c, d], strict=True):
        np.testing.assert_array_equal(got, want)
    _wait(driver, "const s = window.samkit; return s.saving === 0 && s.objects.length === 4")
    assert driver.execute_script("return window.samkit.merges") == 1
    server.store.put(2, [("cat", a), ("dog", b)])  # as before, for what follows
    driver.execute_script("window.samkit.fn.open(2)")
    _wait(
        driver, "const s = window.samkit; return s.cur === 2 && s.image && s.objects.length === 2"
    )

    # Alt+click selects object 0; brush (R) of radius 5 at its right edge adds a half disc.
    canvas = driver.find_element(By.ID, "canvas")
    rect, size, to_screen = canvas.rect, canvas.size, _screen(driver)

    def at(x: float, y: float) -> ActionChains:
        sx, sy = to_screen(x, y)
        return ActionChains(driver).move_to_element_with_offset(
            canvas, round(sx - rect["x"] - size["width"] / 2),
            round(sy - rect["y"] - size["height"] / 2))  # fmt: skip

    at(60, 50).key_down("\ue00a").click().key_up("\ue00a").perform()
    _wait(driver, "return window.samkit.selected === 0")
    driver.execute_script("window.samkit.fn.setBrush(5)")
    ActionChains(driver).send_keys("r").perform()
    at(110, 50).click().perform()
    stroke = _wait(driver, "return window.samkit.lastStroke")
    assert stroke["value"] == 1 and stroke["index"] == 0
    brushed = a | _swept(stroke["pts"], 5)
    assert brushed.sum() > a.sum() + 20
    _wait(driver, idle)
    np.testing.assert_array_equal(_saved(server, 2, 2)[0], brushed)

    # Eraser (X): a drag along the top of object 0.
    ActionChains(driver).send_keys("x").perform()
    driver.execute_script("window.samkit.lastStroke = null")
    x0, _ = to_screen(40, 22)
    x1, _ = to_screen(100, 22)
    at(40, 22).click_and_hold().move_by_offset(round((x1 - x0) / 2), 0).move_by_offset(
        round(x1 - x0) - round((x1 - x0) / 2), 0).release().perform()  # fmt: skip
    stroke = _wait(driver, "return window.samkit.lastStroke")
    assert stroke["value"] == 0 and len(stroke["pts"]) >= 2
    erased = brushed & ~_swept(stroke["pts"], 5)
    assert erased.sum() < brushed.sum() - 100
    _wait(driver, idle)
    np.testing.assert_array_equal(_saved(server, 2, 2)[0], erased)
    ActionChains(driver).send_keys("x").send_keys("\ue00c").perform()  # back to clicks; deselect

    # Hide / opacity: a pixel inside object 1 on the canvas (device pixels).
    at_pixel = """const s = window.samkit, d = s.dpr, v = s.view, [u, w] = arguments;
        s.fn.draw();
        const x = Math.floor(d * (v.ox + u * v.scale)), y = Math.floor(d * (v.oy + w * v.scale));
        return Array.from(s.ctx.getImageData(x, y, 1, 1).data.slice(0, 3));"""  # fmt: skip
    pixel = at_pixel.replace("arguments", "[190.5, 130.5]")
    color = np.array(driver.execute_script("return window.samkit.objects[1].color"))
    driver.find_element(By.ID, "hide-all").click()
    plain = np.array(driver.execute_script(pixel))
    driver.find_element(By.ID, "hide-all").click()
    driver.execute_script("window.samkit.fn.setOpacity(1)")
    np.testing.assert_allclose(driver.execute_script(pixel), color, atol=1)
    driver.execute_script("window.samkit.fn.setOpacity(0.5)")
    np.testing.assert_allclose(driver.execute_script(pixel), (plain + color) / 2, atol=2)
    driver.find_elements(By.CSS_SELECTOR, "#objects .eye")[1].click()  # hide object 1 only
    np.testing.assert_allclose(driver.execute_script(pixel), plain, atol=1)
    driver.find_elements(By.CSS_SELECTOR, "#objects .eye")[1].click()
    ActionChains(driver).send_keys("o").perform()  # outlines only: the inside shows the image
    np.testing.assert_allclose(driver.execute_script(pixel), plain, atol=1)
    edge = driver.execute_script(at_pixel, 150.5, 130.5)  # the object's left column
    np.testing.assert_allclose(edge, color, atol=1)
    ActionChains(driver).send_keys("o").perform()
    assert driver.execute_script("return window.samkit.objects.map((o) => o.color.join())")[0] != (
        driver.execute_script("return window.samkit.objects[1].color.join()")
    )
    _shot(driver, tmp_path / "05_edit.png")

    # Status "done" on the page, then a rejected object with a comment: needs fix.
    driver.find_element(By.CSS_SELECTOR, "#status-buttons [data-status=done]").click()
    _wait(driver, "return window.samkit.images[2].status === 'done'")
    status = json.loads((server.store.output_dir / "status.json").read_text())
    assert status["img02.png"]["status"] == "done"
    driver.execute_script(
        "const s = window.samkit; s.selected = 1; s.fn.renderObjects(); s.fn.draw()"
    )
    driver.find_element(By.ID, "comment").send_keys("tail is missing")
    driver.find_element(By.ID, "reject-object").click()
    _wait(driver, "return window.samkit.images[2].status === 'needs_fix'")
    status = json.loads((server.store.output_dir / "status.json").read_text())
    assert status["img02.png"]["objects"] == {
        "1": {"verdict": "reject", "comment": "tail is missing"}
    }
    _wait(driver, "return document.getElementById('counts').textContent.includes('1 needs fix')")
    assert "tail is missing" in driver.find_element(By.ID, "review-notes").text
    _shot(driver, tmp_path / "06_review.png")
    errors = [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert not [e for e in errors if "status of 412" not in e], errors  # 412: the merged save

    # A layer painted from the RLE runs equals the one painted from a full bitmap.
    blob = np.random.default_rng(3).random((192, 256)) > 0.7
    blob[:, :40] = blob[150:] = False
    same = driver.execute_script("""
        const M = window.samkitMasks, rle = arguments[0], [h, w] = rle.size;
        const a = M.paintRle(rle, [10, 20, 30], 255), b = M.paint(M.toBitmap(rle), h, w, [10, 20, 30], 255, 0);
        const da = a.getContext('2d').getImageData(0, 0, a.width, a.height).data;
        const db = b.getContext('2d').getImageData(0, 0, b.width, b.height).data;
        return [a.ox, a.oy, a.width, a.height, b.ox, b.oy, b.width, b.height, da.every((v, i) => v === db[i])];""",
        coco_rle(blob))  # fmt: skip
    ys, xs = np.nonzero(blob)
    box = [int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)]
    assert same == [*box, *box, True], same

    # HiDPI: the canvas has a backing pixel per device pixel.
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": 1100, "height": 700, "deviceScaleFactor": 2, "mobile": False})  # fmt: skip
    try:
        driver.execute_script("window.dispatchEvent(new Event('resize'))")
        sizes = driver.execute_script(
            "const c = window.samkit.canvas; return [c.width, c.clientWidth, window.devicePixelRatio]"
        )
        assert sizes[2] == 2 and sizes[0] == 2 * sizes[1], sizes
    finally:
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
