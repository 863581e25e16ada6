"""Auto-annotation throughput: single process vs a Ray cluster with 1 and 2 encoder actors.

    python benchmarks/bench_ray.py [--images 16] [--boxes 4] [--size 1280x720]

Runs ``samkit.auto_annotate`` (MobileSAM, seeded random weights; boxes from a YOLO box-label
folder, so no detector cost) over the same images: in this process, then on a local Ray
instance (``ray.init`` on this machine) with 1 and with 2 encoder actors. Prints images/s, the
ratio to the single-process run, and the per-stage seconds per image the Ray run measured,
from which it states the throughput model for more nodes:

    images/s per node ~= min(E / t_encode, D / t_decode, K / t_detect)

(E, D, K actors per stage on that node), summed over nodes while the driver and the shared
storage keep up. A model from measured stage times, not a promise. Ray's start-up (seconds) is
inside the Ray timings: a real job of thousands of images amortises it; ``--warm`` excludes it
by timing a second run on the same Ray instance.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

from common import machine_info, seeded_checkpoint


def _setup(folder: Path, n: int, boxes: int, width: int, height: int) -> dict[str, Path]:
    import cv2
    import numpy as np

    from reference import make_image

    ckpt = seeded_checkpoint(folder / "mobile_sam_random.pt")
    images, labels = folder / "images", folder / "boxes"
    images.mkdir()
    labels.mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        cv2.imwrite(
            str(images / f"photo{i:03d}.jpg"), make_image(height, width, seed=i)[:, :, ::-1]
        )
        rows = []
        for _ in range(boxes):
            cx, cy = rng.uniform(0.2, 0.8, 2)
            w, h = rng.uniform(0.1, 0.3, 2)
            rows.append(f"{int(rng.integers(0, 3))} {cx:.4f} {cy:.4f} {w:.4f} {h:.4f}")
        (labels / f"photo{i:03d}.txt").write_text("\n".join(rows) + "\n")
    return {"ckpt": ckpt, "images": images, "boxes": labels}


def _run(data: dict[str, Path], out: Path, **kwargs: Any) -> tuple[float, Any]:
    from samkit.annotate import auto_annotate

    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    summary = auto_annotate(
        data["images"], det_model=data["boxes"], sam_model=data["ckpt"], device="cpu",
        output_dir=out, format="yolo,coco", progress=False, verbose=False, **kwargs,
    )  # fmt: skip
    return time.perf_counter() - start, summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--boxes", type=int, default=4)
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--warm", action="store_true", help="time a second run per layout")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    print(machine_info())
    tmp = Path(tempfile.mkdtemp(prefix="bench_ray_"))
    try:
        data = _setup(tmp, args.images, args.boxes, width, height)
        n = args.images
        single, _ = _run(data, tmp / "local")
        print(f"single process: {single:.1f} s, {n / single:.2f} images/s")
        layouts = {"ray, 1 encoder actor": 1, "ray, 2 encoder actors": 2}
        for label, actors in layouts.items():
            opts = {"encoder_actors": actors, "decoder_actors": 1, "cpus_per_actor": 0.5}
            seconds, summary = _run(data, tmp / "ray", engine="ray", ray=opts)
            if args.warm:
                import ray

                ray.init(include_dashboard=False, log_to_driver=False)
                _run(data, tmp / "ray", engine="ray", ray=opts)  # warms the workers' imports
                seconds, summary = _run(data, tmp / "ray", engine="ray", ray=opts)
                ray.shutdown()
            t = summary.stage_seconds
            print(f"{label}: {seconds:.1f} s, {n / seconds:.2f} images/s = "
                  f"{single / seconds:.2f}x the single process; per image: detect "
                  f"{t['detect']:.3f} s, encode {t['encode']:.3f} s, decode+write "
                  f"{t['decode']:.3f} s")  # fmt: skip
            bound = min(actors / t["encode"], 1 / t["decode"], 1 / t["detect"])
            print(
                f"  model: one node of this kind ~ {bound:.2f} images/s once started; "
                f"each added node adds about as much while storage and driver keep up"
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
