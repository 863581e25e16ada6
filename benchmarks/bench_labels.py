"""Label writers on fragmented masks: one image's YOLO-seg / COCO / LabelMe files, and
``merge_polygons`` against the all-pairs splice samkit used before (the reference, kept here).

    python benchmarks/bench_labels.py                 # 20 objects, up to 2000 parts each
    python benchmarks/bench_labels.py --parts 500 --objects 5

Masks are noise: blocks scattered over a 1280x720 image, so every object has ``--parts``
connected parts (fences, foliage, noisy masks). Prints seconds per image for each writer and the
merge ratio against the reference measured in the same run (the reference runs on the first
object only when it would take minutes).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from common import machine_info
from samkit.annotate.writers import DatasetWriter
from samkit.polygon_merge import area_key
from samkit.polygons import mask_to_polygons, merge_polygons


def fragmented_mask(
    rng: np.random.Generator, parts: int, h: int = 720, w: int = 1280
) -> np.ndarray:
    """``(h, w)`` bool with ``parts`` separate 2x2 blocks on a 3-pixel lattice."""
    cells = rng.choice((h // 3) * (w // 3), size=parts, replace=False)
    ys, xs = np.divmod(cells, w // 3)
    mask = np.zeros((h, w), bool)
    for dy in range(2):
        for dx in range(2):
            mask[3 * ys + dy, 3 * xs + dx] = True
    return mask


def splice_all_pairs(polygons: list[np.ndarray]) -> np.ndarray:
    """The previous merge: parts largest first, each spliced into the growing path at the
    closest vertex pair found by an all-pairs distance search."""
    polys = sorted((np.asarray(p, np.float64) for p in polygons), key=area_key, reverse=True)
    path = polys[0]
    for part in polys[1:]:
        best = (np.inf, 0, 0)
        for s in range(0, len(path), 2048):
            d2 = ((path[s : s + 2048, None, :] - part[None]) ** 2).sum(-1)
            i, j = divmod(int(np.argmin(d2)), d2.shape[1])
            if d2[i, j] < best[0]:
                best = (float(d2[i, j]), s + i, j)
        _, i, j = best
        loop = np.roll(part, -j, axis=0)
        path = np.concatenate([path[: i + 1], loop, loop[:1], path[i:]])
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--objects", type=int, default=20)
    ap.add_argument("--parts", type=int, default=2000)
    args = ap.parse_args()
    print(machine_info())
    rng = np.random.default_rng(0)
    masks = np.stack([fragmented_mask(rng, args.parts) for _ in range(args.objects)])
    polys = mask_to_polygons(masks[0])
    t0 = time.perf_counter()
    merge_polygons(polys)
    ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    splice_all_pairs(polys)
    ref = time.perf_counter() - t0
    print(
        f"merge_polygons, {len(polys)} parts: {ours:.3f} s vs all-pairs splice {ref:.3f} s "
        f"= {ours / ref:.4f}x the reference ({ref / ours:.0f}x faster)"
    )
    classes = np.zeros(args.objects, np.int64)
    scores = np.ones(args.objects)
    for fmt in ("yolo", "coco", "labelme"):
        with tempfile.TemporaryDirectory() as tmp:
            writer = DatasetWriter(tmp, [fmt], segmentation="polygon")
            t0 = time.perf_counter()
            writer.write("a.jpg", Path(tmp) / "a.jpg", 720, 1280, classes, scores, masks,
                         {0: "object"}, {0: 1})  # fmt: skip
            took = time.perf_counter() - t0
        print(f"{fmt}: {took:.2f} s per image ({args.objects} objects x {args.parts} parts)")


if __name__ == "__main__":
    main()
