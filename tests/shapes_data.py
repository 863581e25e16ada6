"""A generated, exactly known instance-segmentation dataset for the val / train / distill tests.

``make_shapes_dataset(root, n_images)`` draws images of objects on a textured background --
discs, rectangles, rings (a hole) and two-part objects -- with distinct colours and stripes,
never overlapping (so every mask is exactly its object's pixels), and writes them in one of the
formats :func:`samkit.datasets.open_dataset` reads. Deterministic for a seed.

The true masks are kept in ``root/truth.npz`` (:func:`load_truth`). COCO stores them as RLE, so
the dataset gives them back exactly; YOLO-seg and LabelMe store polygons (holes filled: a ring
reads back as its disc; a two-part object is one merged YOLO polygon), the mask PNGs exactly.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from samkit.formats.coco import CocoWriter
from samkit.formats.labelme import labelme_record, write_labelme
from samkit.formats.mask_png import write_mask_png
from samkit.formats.yolo import format_yolo_lines, write_data_yaml, write_yolo
from samkit.polygons import mask_to_polygons

CATEGORIES = ("disc", "rectangle", "ring", "pair")
FORMATS = ("coco", "yolo", "labelme", "masks")


def _background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = rng.uniform(60, 110, size=3)
    img = np.empty((h, w, 3), np.float32)
    for c in range(3):
        fx, fy = rng.uniform(0.05, 0.2, size=2)
        img[..., c] = base[c] + 20 * np.sin(fx * xx + c) * np.cos(fy * yy)
    img += rng.normal(0, 6, size=img.shape)
    return img


def _shape_mask(kind: str, rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """One object's mask of ``kind`` at a random place (may still overlap others)."""
    yy, xx = np.mgrid[0:h, 0:w]
    s = min(h, w)
    cy, cx = rng.uniform(0.2, 0.8) * h, rng.uniform(0.2, 0.8) * w
    if kind == "disc":
        r = rng.uniform(0.08, 0.16) * s
        return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
    if kind == "rectangle":
        hh, hw = rng.uniform(0.06, 0.15, size=2) * s
        return (abs(yy - cy) <= hh) & (abs(xx - cx) <= hw)
    if kind == "ring":
        r = rng.uniform(0.12, 0.18) * s
        d2 = (yy - cy) ** 2 + (xx - cx) ** 2
        return (d2 <= r * r) & (d2 > (0.5 * r) ** 2)
    r = rng.uniform(0.05, 0.08) * s  # "pair": two discs apart, one object
    dx = rng.uniform(2.5, 3.5) * r
    left = (yy - cy) ** 2 + (xx - cx + dx / 2) ** 2 <= r * r
    return left | ((yy - cy) ** 2 + (xx - cx - dx / 2) ** 2 <= r * r)


def _place(rng: np.random.Generator, h: int, w: int, n: int) -> list[tuple[str, np.ndarray]]:
    taken = np.zeros((h, w), bool)
    out: list[tuple[str, np.ndarray]] = []
    for _ in range(200):
        if len(out) == n:
            break
        kind = CATEGORIES[int(rng.integers(len(CATEGORIES)))]
        mask = _shape_mask(kind, rng, h, w)
        grown = cv2.dilate(mask.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
        if (
            mask.sum() < 20
            or (grown & taken).any()
            or mask[[0, -1]].any()
            or mask[:, [0, -1]].any()
        ):
            continue
        taken |= grown
        out.append((kind, mask))
    return out


def _draw(rng: np.random.Generator, img: np.ndarray, mask: np.ndarray, index: int) -> None:
    hue = (index * 47 + int(rng.integers(0, 30))) % 180
    color = cv2.cvtColor(np.uint8([[[hue, 220, 230]]]), cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32)
    yy, xx = np.nonzero(mask)
    stripes = 25 * np.sin((xx + yy) * rng.uniform(0.4, 0.9))
    img[yy, xx] = color + stripes[:, None]


def make_shapes_dataset(
    root: Path,
    n_images: int,
    *,
    size: tuple[int, int] = (128, 160),
    seed: int = 0,
    fmt: str = "coco",
    min_objects: int = 2,
    max_objects: int = 4,
) -> Path:
    """Write ``n_images`` PNG images ``(height, width) = size`` under ``root/images`` with
    annotations in ``fmt``; returns the path to pass to ``open_dataset``: ``instances.json``
    (coco), ``data.yaml`` (yolo, split ``val``), the image folder with LabelMe JSON beside the
    images (labelme), ``root`` (masks)."""
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {FORMATS}, got {fmt!r}")
    rng = np.random.default_rng(seed)
    h, w = size
    images = Path(root) / "images"
    images.mkdir(parents=True, exist_ok=True)
    coco = CocoWriter(list(CATEGORIES), segmentation="rle")
    truth: dict[str, np.ndarray] = {}
    for i in range(n_images):
        stem = f"shapes_{i:03d}"
        objects = _place(rng, h, w, int(rng.integers(min_objects, max_objects + 1)))
        img = _background(rng, h, w)
        for k, (_, mask) in enumerate(objects):
            _draw(rng, img, mask, k)
        cv2.imwrite(str(images / f"{stem}.png"), np.clip(img, 0, 255).astype(np.uint8)[..., ::-1])
        masks = np.stack([m for _, m in objects]) if objects else np.zeros((0, h, w), bool)
        kinds = [CATEGORIES.index(kind) for kind, _ in objects]
        truth[stem] = masks
        truth[f"{stem}__categories"] = np.asarray(kinds, np.int64)
        _write_labels(fmt, Path(root), stem, masks, kinds, coco, h, w)
    np.savez_compressed(Path(root) / "truth.npz", **truth)
    if fmt == "coco":
        return coco.write(Path(root) / "instances.json")
    if fmt == "yolo":
        return write_data_yaml(Path(root) / "data.yaml", list(CATEGORIES), root=root, val="images")
    return images if fmt == "labelme" else Path(root)


def _write_labels(
    fmt: str, root: Path, stem: str, masks: np.ndarray, kinds: list[int], coco: CocoWriter,
    h: int, w: int,
) -> None:  # fmt: skip
    image = root / "images" / f"{stem}.png"
    if fmt == "coco":
        iid = coco.add_image(f"{stem}.png", h, w)
        for mask, kind in zip(masks, kinds, strict=True):
            coco.add_annotation(iid, kind + 1, mask)
    elif fmt == "yolo":
        polys = [mask_to_polygons(m, mode="merge") for m in masks]
        write_yolo(root / "labels" / f"{stem}.txt", format_yolo_lines(polys, kinds, w, h))
    elif fmt == "labelme":
        shapes = [(CATEGORIES[k], mask_to_polygons(m)) for m, k in zip(masks, kinds, strict=True)]
        record = labelme_record(image, h, w, shapes, json_dir=image.parent)
        write_labelme(image.with_suffix(".json"), record)
    else:
        for k, mask in enumerate(masks):
            write_mask_png(root / "masks" / stem / f"{k}.png", mask)


def load_truth(root: Path) -> dict[str, list[tuple[str, np.ndarray]]]:
    """``{image stem: [(category, mask (H, W) bool), ...]}`` as drawn."""
    with np.load(Path(root) / "truth.npz") as z:
        stems = [k for k in z.files if not k.endswith("__categories")]
        return {
            s: [(CATEGORIES[int(c)], m) for m, c in zip(z[s], z[f"{s}__categories"], strict=True)]
            for s in stems
        }


__all__ = ["CATEGORIES", "FORMATS", "load_truth", "make_shapes_dataset"]


def edge_case_coco(tmp_path: Path) -> Path:
    """3 images (one file missing), 8 annotations: 2 good polygons/RLE, 1 XYWH-box polygon,
    2 crowd, 1 broken polygon, 1 unknown image, 1 RLE of the wrong size."""
    from samkit.masks import coco_rle as _coco_rle

    for name in ("a.png", "b.png"):
        cv2.imwrite(str(tmp_path / name), np.zeros((40, 50, 3), np.uint8))
    m = np.zeros((40, 50), bool)
    m[5:15, 10:30] = True
    anns = [
        {"id": 1, "image_id": 1, "category_id": 1, "iscrowd": 0, "bbox": [10, 5, 20, 10],
         "segmentation": [[10, 5, 30, 5, 30, 15, 10, 15]]},
        {"id": 2, "image_id": 1, "category_id": 2, "iscrowd": 0, "segmentation": _coco_rle(m)},
        {"id": 3, "image_id": 1, "category_id": 1, "iscrowd": 1, "segmentation": _coco_rle(m)},
        {"id": 4, "image_id": 2, "category_id": 1, "iscrowd": 1, "segmentation": _coco_rle(m)},
        {"id": 5, "image_id": 2, "category_id": 1, "iscrowd": 0, "segmentation": [[1, 1, 5, 5]]},
        {"id": 6, "image_id": 9, "category_id": 1, "iscrowd": 0, "segmentation": _coco_rle(m)},
        {"id": 7, "image_id": 2, "category_id": 1, "segmentation": {"size": [4, 5], "counts": [20]}},
        {"id": 8, "image_id": 2, "category_id": 2, "segmentation": [[0, 0, 4, 0, 4, 3]],
         "bbox": [0, 0, 4, 3]},
    ]  # fmt: skip
    data = {
        "images": [
            {"id": 1, "file_name": "a.png", "height": 40, "width": 50},
            {"id": 2, "file_name": "b.png", "height": 40, "width": 50},
            {"id": 3, "file_name": "missing.png", "height": 40, "width": 50},
        ],
        "annotations": anns,
        "categories": [{"id": 1, "name": "box"}, {"id": 2, "name": "tri"}],
    }
    path = tmp_path / "instances.json"
    path.write_text(json.dumps(data))
    return path
