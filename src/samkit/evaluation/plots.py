"""Plots of a val run (matplotlib's Agg canvas; the global backend is never changed):

- ``iou_histogram.png``: per protocol, the IoU distribution of every model, overlaid;
- ``miou_vs_clicks.png``: mIoU after 1..max_clicks clicks per model (``clicks`` only);
- ``worst_<model>_<protocol>.png``: the worst instances, each image cropped around the object,
  the ground truth outlined in green and the prediction filled in red, with IoU and ids.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import cv2
import numpy as np

__all__ = ["write_plots"]


def _figure(w: float, h: float) -> Any:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError(
            "val plots need matplotlib: pip install matplotlib (or plots=False)"
        ) from None
    fig = Figure(figsize=(w, h), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Any, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path)


def _histograms(res: Any, out: Path) -> None:
    protocols = [p for p in res.settings["protocols"] if p != "detections"]
    if not protocols:
        return
    fig = _figure(4.2 * len(protocols), 3.4)
    for k, p in enumerate(protocols):
        ax = fig.add_subplot(1, len(protocols), k + 1)
        for label in res.models:
            ious = [r.iou for r in res.instances if r.model == label and r.protocol == p]
            if ious:
                ax.hist(ious, bins=20, range=(0, 1), alpha=0.55, label=label)
        ax.set_title(p)
        ax.set_xlabel("IoU")
        ax.set_ylabel("instances")
        ax.legend(fontsize=7)
    _save(fig, out / "iou_histogram.png")


def _click_curve(res: Any, out: Path) -> None:
    fig = _figure(5, 3.6)
    ax = fig.add_subplot(1, 1, 1)
    for label, per in res.models.items():
        curve = per["clicks"]["miou_curve"]
        ax.plot(range(1, len(curve) + 1), curve, marker="o", ms=3, label=label)
    ax.set_xlabel("clicks")
    ax.set_ylabel("mIoU")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    _save(fig, out / "miou_vs_clicks.png")


def _crop(item: dict[str, Any]) -> np.ndarray:
    """The overlay of one gallery item on its crop of the image (RGB uint8)."""
    from samkit.sources import read_image

    y0, y1, x0, x1 = item["box"]
    gt, pred = item["gt"], item["pred"]
    img = read_image(item["path"])[y0:y1, x0:x1].astype(np.float32)
    img[pred] = 0.5 * img[pred] + 0.5 * np.array([230, 40, 40])
    contours, _ = cv2.findContours(gt.astype(np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
    vis = np.ascontiguousarray(img.astype(np.uint8))
    cv2.drawContours(vis, contours, -1, (40, 230, 40), 1)
    return vis


def _gallery(items: list[dict[str, Any]], title: str, path: Path) -> None:
    cols = min(4, len(items))
    rows = (len(items) + cols - 1) // cols
    fig = _figure(3.2 * cols, 3.2 * rows + 0.4)
    fig.suptitle(title, fontsize=10)
    for k, item in enumerate(items):
        ax = fig.add_subplot(rows, cols, k + 1)
        try:
            ax.imshow(_crop(item))
        except Exception as e:  # an image gone since the run read it: say so in the tile
            ax.text(0.5, 0.5, f"cannot show: {e}", ha="center", fontsize=6, wrap=True)
        r = item["row"]
        ax.set_title(
            f"IoU {r.iou:.3f}  {r.category}\n{Path(r.image).name} #{r.instance_id}", fontsize=7
        )
        ax.axis("off")
    _save(fig, path)


def write_plots(res: Any, gallery: dict[tuple[str, str], list[dict[str, Any]]]) -> None:
    """Write every plot of ``res`` (a ValResults with ``save_dir``) into its run folder."""
    out = res.save_dir
    _histograms(res, out)
    if "clicks" in res.settings["protocols"]:
        _click_curve(res, out)
    for (model, protocol), items in gallery.items():
        if items:
            safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", model)
            title = f"{model} / {protocol}: worst {len(items)} (green: truth, red: prediction)"
            _gallery(items, title, out / f"worst_{safe}_{protocol}.png")
