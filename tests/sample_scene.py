"""The scene behind samkit's bundled sample image (``src/samkit/assets/sample.jpg``).

The sample is drawn here, not taken from anywhere, so it carries samkit's own licence. It is a
small outdoor scene (sky, hills, grass, a house, a tree and a red ball with its shadow) with
shading, blur and sensor noise so that it reads like a photo and gives a segmenter real
edges. ``python tests/sample_scene.py`` rewrites the asset; ``test_sample`` checks that the
shipped file is this drawing and that the README's first command segments the ball.
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np

W, H = 640, 427
BALL = (520, 330, 32)  # centre x, centre y, radius: the README's point prompt is its centre
HOUSE = (90, 170, 260, 300)  # wall XYXY
TREE_CROWN = (410, 165, 62)


def _noise(rng: np.random.Generator, sigma: float, blur: float) -> np.ndarray:
    """(H, W) float32 smooth noise of std about ``sigma``."""
    field = rng.normal(0, 1, (H, W)).astype(np.float32)
    field = cv2.GaussianBlur(field, (0, 0), blur)
    return field / (field.std() + 1e-6) * sigma


def render_scene(seed: int = 2026) -> np.ndarray:
    """The sample scene as (H, W, 3) uint8 RGB, the same for the same ``seed``."""
    rng = np.random.default_rng(seed)
    img = np.zeros((H, W, 3), np.float32)
    horizon = 250
    t = np.linspace(0, 1, horizon, dtype=np.float32)[:, None]
    img[:horizon] = (1 - t)[..., None] * [110, 160, 225] + t[..., None] * [205, 222, 238]
    xs = np.arange(W, dtype=np.float32)
    ridge = horizon - 40 - 22 * np.sin(xs / 95.0) - 12 * np.sin(xs / 31.0 + 1.0)
    rows = np.arange(H, dtype=np.float32)[:, None]
    hills = (rows >= ridge[None, :]) & (rows < horizon)
    img[hills] = [88, 118, 110]
    grass = np.linspace(0, 1, H - horizon, dtype=np.float32)[:, None, None]
    img[horizon:] = (1 - grass) * [96, 150, 70] + grass * [60, 118, 42]
    img[horizon:] += _noise(rng, 9, 1.2)[horizon:, :, None] * [0.6, 1.0, 0.4]
    x1, y1, x2, y2 = HOUSE
    wall = np.array([232, 214, 178], np.float32) + _noise(rng, 4, 2)[y1:y2, x1:x2, None]
    img[y1:y2, x1:x2] = wall
    img[y1:y2, x1 + 120 : x2] *= 0.82  # the side in shade
    roof = np.array([[x1 - 16, y1 + 4], [x2 + 16, y1 + 4], [(x1 + x2) // 2, y1 - 66]], np.int32)
    canvas = img.copy()
    cv2.fillPoly(canvas, [roof], (158, 52, 40))
    cv2.rectangle(canvas, (160, 235), (192, y2 - 1), (104, 66, 40), -1)  # door
    for wx in (108, 212):
        cv2.rectangle(canvas, (wx - 3, 197), (wx + 33, 233), (245, 245, 240), -1)
        cv2.rectangle(canvas, (wx, 200), (wx + 30, 230), (120, 150, 175), -1)
    cv2.rectangle(canvas, (402, 200), (420, 312), (92, 62, 36), -1)  # trunk
    cx, cy, r = TREE_CROWN
    for dx, dy, rr in ((0, 0, r), (-38, 22, 40), (40, 18, 42), (0, -40, 38)):
        cv2.circle(canvas, (cx + dx, cy + dy), rr, (46, 98, 40), -1)
    bx, by, br = BALL
    cv2.ellipse(canvas, (bx + 10, by + br - 4), (br + 8, 9), 0, 0, 360, (40, 80, 30), -1)
    img = canvas
    crown = np.zeros((H, W), np.uint8)
    for dx, dy, rr in ((0, 0, r), (-38, 22, 40), (40, 18, 42), (0, -40, 38)):
        cv2.circle(crown, (cx + dx, cy + dy), rr, 1, -1)
    img[crown > 0] += _noise(rng, 14, 1.5)[crown > 0][:, None] * [0.5, 1.0, 0.4]
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    d = np.sqrt((xx - bx) ** 2 + (yy - by) ** 2)
    ball = d <= br
    light = np.sqrt((xx - bx + 12) ** 2 + (yy - by + 12) ** 2) / (1.6 * br)
    shade = np.clip(1.15 - light, 0.45, 1.1)[ball]
    img[ball] = shade[:, None] * np.array([214, 38, 32], np.float32)
    img = cv2.GaussianBlur(img, (0, 0), 0.7)
    img += rng.normal(0, 2.5, img.shape).astype(np.float32)
    return np.clip(img + 0.5, 0, 255).astype(np.uint8)


def write_sample(path: Path) -> Path:
    """Encode :func:`render_scene` as the JPEG that ships (quality 88)."""
    ok, buf = cv2.imencode(".jpg", render_scene()[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 88])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    path.write_bytes(buf.tobytes())
    return path


if __name__ == "__main__":
    root = Path(__file__).resolve().parents[1]
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else root / "src/samkit/assets/sample.jpg"
    target.parent.mkdir(parents=True, exist_ok=True)
    print(write_sample(target), target.stat().st_size, "bytes")
