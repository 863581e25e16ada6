"""Shared setup of the annotator tests: a tiny seeded checkpoint whose masks are regions, a
folder of drawn images, and a server in a child process."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from front_helpers import TINY_CONFIG
from reference import randomize
from samkit.build import build_from_config

SERVER = "from samkit.cli import main; raise SystemExit(main())"


def region_like(model: torch.nn.Module, seed: int) -> None:
    """Tweak random weights so masks are image regions rather than pixel noise: a smooth
    positional embedding (4x4 noise upsampled to its own grid), spatially constant
    transposed-conv kernels (no 2x2 checkerboard) and a stronger image embedding (so it is not
    drowned by the prompt tokens)."""
    gen = torch.Generator().manual_seed(seed)
    enc, dec = model.image_encoder, model.mask_decoder
    with torch.no_grad():
        grid = enc.pos_embed.shape[1:3]
        low = torch.randn(1, enc.pos_embed.shape[-1], 4, 4, generator=gen)
        smooth = torch.nn.functional.interpolate(low, grid, mode="bicubic")
        enc.pos_embed[:] = smooth.permute(0, 2, 3, 1)
        for mod in dec.output_upscaling:
            if isinstance(mod, torch.nn.ConvTranspose2d):
                mod.weight[:] = mod.weight.mean(dim=(2, 3), keepdim=True)
        enc.neck[-1].weight *= 40.0
        enc.neck[-1].bias *= 40.0


def region_checkpoint(path: Path, seed: int = 0) -> Path:
    """Seeded random weights of the 256-input ViT (official key names), tweaked by
    :func:`region_like` so masks are image regions."""
    model = build_from_config(TINY_CONFIG)
    randomize(model, seed)
    region_like(model, seed)
    torch.save(model.state_dict(), path)
    return path


def draw_image(height: int, width: int, seed: int) -> np.ndarray:
    """RGB uint8 (H, W, 3): a light background with a few filled shapes."""
    rng = np.random.default_rng(seed)
    img = np.full((height, width, 3), 225, np.uint8)
    for _ in range(3):
        color = tuple(int(c) for c in rng.integers(20, 200, 3))
        cx, cy = int(rng.integers(20, width - 20)), int(rng.integers(20, height - 20))
        if rng.random() < 0.5:
            cv2.circle(img, (cx, cy), int(rng.integers(10, 30)), color, -1)
        else:
            cv2.rectangle(img, (cx - 20, cy - 15), (cx + 20, cy + 15), color, -1)
    return img


def write_images(folder: Path, count: int, height: int = 96, width: int = 128) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"img{i:02d}.png"
        cv2.imwrite(str(path), draw_image(height, width, i)[:, :, ::-1])
        paths.append(path)
    return paths


def start_server(args: list[str], timeout: float = 120.0) -> tuple[subprocess.Popen[str], str]:
    """``samkit label <args> port=0`` in a child process; returns it and the URL it printed."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(Path(__file__).resolve().parents[1] / "src"), env.get("PYTHONPATH", "")]
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVER, "label", *args, "port=0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    deadline = time.monotonic() + timeout
    seen = []
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line)
        match = re.search(r"open (http://\S+)", line)
        if match:
            return proc, match.group(1)
    proc.kill()
    raise RuntimeError("server did not start:\n" + "".join(seen))


class ThreadServer:
    """An ASGI app served by uvicorn on a free 127.0.0.1 port in a background thread."""

    def __init__(self, app: object) -> None:
        import socket
        import threading

        import uvicorn

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/"
        config = uvicorn.Config(app, log_level="warning")  # type: ignore[arg-type]
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )
        self.thread.start()

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()


def chromium_driver(width: int = 1100, height: int = 700) -> object:
    """Headless Debian Chromium through Selenium (no browser download)."""
    import shutil

    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser = shutil.which("chromium") or "/usr/bin/chromium"
    driver_path = shutil.which("chromedriver") or "/usr/bin/chromedriver"
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                f"--window-size={width},{height}", "--force-device-scale-factor=1"):  # fmt: skip
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # the page's console
    return webdriver.Chrome(service=Service(driver_path), options=options)
