"""``samkit label`` in a real browser: click-to-mask latency and time to the first mask on a
new image, with and without background pre-encoding.

    python benchmarks/bench_label.py                     # MobileSAM (seeded random weights)
    python benchmarks/bench_label.py --model mobile_sam.pt --clicks 50 --json out.json

The server runs as ``samkit label`` in a child process; headless Chromium (Debian's
``chromium`` + ``chromedriver`` through Selenium) clicks on the canvas. Latencies are measured
inside the page, from the mouse-up to the mask drawn on the canvas (request, decoding from the
cached embedding on the server, COCO RLE both ways, drawing). The reference, measured in the
same run: ``SamPredictor.predict`` (one point, 3 masks) and ``set_image`` called in-process.

- click-to-mask: ``--clicks`` clicks on the first image after its embedding is ready, in pairs
  (a new object: 1 point -> 3 candidates; a refining point: 2 points -> 1 mask);
- first mask on a new image: the user spends ``--think`` seconds on an image (default twice
  the measured encoder time), presses D, and clicks as soon as the next image shows; time from
  the key to the mask on screen, with ``prefetch=2`` (next images encoded in the background)
  and ``prefetch=0`` (encoded on the first click).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as `samkit label` sets it; before torch

from common import machine_info, seeded_checkpoint


def _images(folder: Path, count: int, width: int, height: int) -> list[Path]:
    import cv2

    from reference import make_image

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"photo{i:02d}.jpg"
        cv2.imwrite(str(path), make_image(height, width, seed=i)[:, :, ::-1])
        paths.append(path)
    return paths


def _reference(ckpt: Path, image: Path, repeats: int = 20) -> dict[str, float]:
    """In-process engine times: set_image (s) and one point -> 3 masks (ms), medians."""
    from samkit.build import build_sam
    from samkit.predictor import SamPredictor
    from samkit.sources import read_image

    predictor = SamPredictor(build_sam(ckpt))
    rgb = read_image(image)
    encode = []
    for _ in range(3):
        start = time.perf_counter()
        predictor.set_image(rgb)
        encode.append(time.perf_counter() - start)
    rng = np.random.default_rng(0)
    decode = []
    for _ in range(repeats):
        pt = rng.uniform([0, 0], [rgb.shape[1], rgb.shape[0]])[None]
        start = time.perf_counter()
        predictor.predict(pt, np.array([1]))
        decode.append(time.perf_counter() - start)
    return {"encode_s": statistics.median(encode), "decode_ms": 1000 * statistics.median(decode)}


class Page:
    """The annotator page in headless Chromium."""

    def __init__(self, url: str) -> None:
        from label_helpers import chromium_driver

        self.driver: Any = chromium_driver(1280, 860)
        self.driver.get(url)
        self.wait("return window.samkit && window.samkit.image")

    def wait(self, script: str, timeout: float = 300.0) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.driver.execute_script(script)
            if value:
                return value
            time.sleep(0.005)
        raise TimeoutError(script)

    def js(self, script: str) -> Any:
        return self.driver.execute_script(script)

    def click(self, x: float, y: float, button: int = 0) -> float:
        """Click image pixel (x, y); returns the page's click-to-mask latency in ms."""
        from selenium.webdriver.common.action_chains import ActionChains
        from selenium.webdriver.common.by import By

        n = self.js("return window.samkit.latencies.length")
        canvas = self.driver.find_element(By.ID, "canvas")
        v = self.js("return window.samkit.view")
        rect = canvas.rect
        dx = v["ox"] + x * v["scale"] - rect["width"] / 2
        dy = v["oy"] + y * v["scale"] - rect["height"] / 2
        chain = ActionChains(self.driver).move_to_element_with_offset(canvas, round(dx), round(dy))
        (chain.context_click() if button == 2 else chain.click()).perform()
        self.wait(f"return window.samkit.latencies.length > {n}")
        return float(self.js("return window.samkit.latencies.at(-1)"))

    def key(self, keys: str) -> None:
        from selenium.webdriver.common.action_chains import ActionChains

        ActionChains(self.driver).send_keys(keys).perform()

    def close(self) -> None:
        self.driver.quit()


def _clicks(page: Page, count: int, size: tuple[int, int]) -> tuple[list[float], list[float]]:
    """Latencies (ms) and server decode times (ms) of ``count`` clicks on the open image."""
    w, h = size
    rng = np.random.default_rng(1)
    page.click(w / 2, h / 2)  # the embedding is ready after this one (not counted)
    page.key("\ue00c")  # Esc
    start = len(page.js("return window.samkit.serverMs"))
    out = []
    while len(out) < count:
        x, y = rng.uniform(0.05, 0.95) * w, rng.uniform(0.05, 0.95) * h
        out.append(page.click(x, y))  # a new object: 3 candidates
        if len(out) < count:
            out.append(page.click(min(x + 0.1 * w, w - 1), y, button=2))  # refine: 1 mask
        page.key("\ue00c")
    server = page.js("return window.samkit.serverMs")[start:]
    return out, [float(s) for s in server]


def _first_clicks(page: Page, rounds: int, think: float, size: tuple[int, int]) -> list[dict]:
    """Press D after ``think`` seconds and click at once when the next image shows."""
    w, h = size
    out = []
    for _ in range(rounds):
        time.sleep(think)
        cur = page.js("return window.samkit.cur")
        page.key("d")
        page.wait(f"return window.samkit.cur === {cur + 1} && window.samkit.image")
        latency = page.click(w / 2, h / 2)
        shown = page.js("return window.samkit.loaded - window.samkit.openedAt")
        total = page.js("return window.samkit.lastDrawn - window.samkit.openedAt")
        out.append({"image_ms": shown, "click_ms": latency, "key_to_mask_ms": total})
    return out


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model", default=None, help="checkpoint (default: seeded random MobileSAM)"
    )
    parser.add_argument("--clicks", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3, help="new images per prefetch setting")
    parser.add_argument("--size", default="1024x768", help="image WxH")
    parser.add_argument("--think", type=float, default=None, help="seconds on an image")
    parser.add_argument("--json", default=None, help="write the raw numbers here")
    args = parser.parse_args()
    if not shutil.which("chromium") or not shutil.which("chromedriver"):
        print(
            "needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)"
        )
        return 2
    from label_helpers import start_server

    w, h = (int(v) for v in args.size.lower().split("x"))
    info = machine_info()
    print(info if isinstance(info, str) else json.dumps(info))
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        ckpt = Path(args.model) if args.model else seeded_checkpoint(tmp / "mobile_sam_random.pt")
        images = _images(tmp / "images", 2 + 2 * args.rounds, w, h)
        ref = _reference(ckpt, images[0])
        think = args.think if args.think is not None else max(2.0, 2 * ref["encode_s"])
        print(f"reference in-process: set_image {ref['encode_s']:.3f} s, "
              f"predict (1 point, 3 masks) {ref['decode_ms']:.1f} ms; think time {think:.1f} s")  # fmt: skip
        results: dict[str, Any] = {"reference": ref, "think_s": think, "size": [w, h]}
        for prefetch in (2, 0):
            server_args = [str(tmp / "images"), f"model={ckpt}", "classes=object",
                           f"output_dir={tmp / f'out{prefetch}'}", f"prefetch={prefetch}",
                           f"cache_dir={tmp / f'cache{prefetch}'}"]  # fmt: skip
            proc, url = start_server(server_args)
            page = Page(url)
            try:
                if prefetch:
                    lat, server = _clicks(page, args.clicks, (w, h))
                    results["clicks_ms"], results["server_ms"] = lat, server
                results[f"first_prefetch{prefetch}"] = _first_clicks(
                    page, args.rounds, think, (w, h)
                )
            finally:
                page.close()
                proc.kill()
                proc.wait()
    _report(results)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


def _report(r: dict[str, Any]) -> None:
    lat, server, ref = r["clicks_ms"], r["server_ms"], r["reference"]
    p50, p95 = _pct(lat, 50), _pct(lat, 95)
    print(
        f"\nclick-to-mask in the browser, {len(lat)} clicks on a {r['size'][0]}x{r['size'][1]} image:"
    )
    print(f"  p50 {p50:.1f} ms, p95 {p95:.1f} ms, max {max(lat):.1f} ms "
          f"(server decode p50 {_pct(server, 50):.1f} ms; in-process predict {ref['decode_ms']:.1f} ms)")  # fmt: skip
    extra = [a - b for a, b in zip(lat, server, strict=False)]
    print(f"  page and transport on top of the server's decode (RLE both ways, HTTP, drawing): "
          f"p50 {_pct(extra, 50):.1f} ms, p95 {_pct(extra, 95):.1f} ms")  # fmt: skip
    print(f"  p50 = {p50 / ref['decode_ms']:.2f}x the in-process predict; "
          f"target p95 <= 150 ms: {'PASS' if p95 <= 150 else 'FAIL'}")  # fmt: skip
    print("\nfirst mask on a new image (key D -> mask on screen), median of rounds:")
    rows = {}
    for prefetch in (2, 0):
        runs = r[f"first_prefetch{prefetch}"]
        rows[prefetch] = statistics.median(x["key_to_mask_ms"] for x in runs)
        clicks = statistics.median(x["click_ms"] for x in runs)
        print(
            f"  prefetch={prefetch}: {rows[prefetch]:.0f} ms (of which the click {clicks:.0f} ms)"
        )
    print(f"  with pre-encoding = {rows[2] / rows[0]:.2f}x without "
          f"(encoder in-process {1000 * ref['encode_s']:.0f} ms)")  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
