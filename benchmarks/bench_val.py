"""``samkit val`` throughput against a plain loop over the reference SamPredictor, one run.

    python benchmarks/bench_val.py                     # MobileSAM, 4 images 480x640
    python benchmarks/bench_val.py --images 8 --size 720,1280 --device cuda

Same seeded MobileSAM weights in both; data: the generated shapes dataset (tests/shapes_data.py;
discs, rectangles, rings, two-part objects). Times, each end to end from image files to per-
instance IoUs:

- ``box``: samkit ``val(protocols="box")`` vs, per image, ``SamPredictor.set_image`` and one
  ``predict(box=..., multimask_output=False)`` per instance;
- ``clicks`` (5 clicks, no early stop): samkit vs a loop calling ``predict`` 5 times per
  instance with the previous low-res logits as ``mask_input`` (the next click by the same
  rule, :func:`samkit.evaluation.clicks.next_click`, so only the model work differs);
- the cache: ``box`` with embeddings computed (cold) vs ``point`` on the same model afterwards
  (embeddings reused from memory; target >= 5x cheaper), and again through a disk cache with a
  fresh model object.

Ratios are samkit time / reference time (lower is faster). Both sides get the same numbers
(printed: mIoU of each).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import cv2
import numpy as np

from common import build_models, machine_info, ratio_line
from engine_suite import build_reference
from samkit import SAM, val
from samkit.datasets import open_dataset
from samkit.embeddings import EmbeddingStore
from samkit.evaluation.clicks import interior_point, next_click
from samkit.evaluation.metrics import mask_iou
from shapes_data import make_shapes_dataset


def reference_box(predictor, ds) -> list[float]:
    ious = []
    for s in ds:
        predictor.set_image(cv2.imread(str(s.path))[..., ::-1].copy())
        for inst in s.instances:
            masks, _, _ = predictor.predict(box=inst.box, multimask_output=False)
            ious.append(float(mask_iou(masks[:1], inst.mask[None])[0]))
    return ious


def reference_clicks(predictor, ds, clicks: int) -> list[float]:
    ious = []
    for s in ds:
        predictor.set_image(cv2.imread(str(s.path))[..., ::-1].copy())
        for inst in s.instances:
            pts, labels, logits = [(*interior_point(inst.mask), 1)], [], None
            for k in range(clicks):
                coords = np.array([p[:2] for p in pts])
                labels = np.array([p[2] for p in pts])
                masks, scores, low = predictor.predict(
                    point_coords=coords, point_labels=labels, mask_input=logits,
                    multimask_output=k == 0,
                )  # fmt: skip
                best = int(np.argmax(scores))
                mask, logits = masks[best], low[best][None]
                nxt = next_click(mask, inst.mask)
                if nxt is not None:
                    pts.append(nxt)
            ious.append(float(mask_iou(mask[None], inst.mask[None])[0]))
    return ious


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--size", default="480,640", help="image height,width")
    parser.add_argument("--clicks", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    print(machine_info())
    h, w = (int(v) for v in args.size.split(","))
    root = Path(tempfile.mkdtemp(prefix="bench_val_"))
    data = make_shapes_dataset(root, args.images, size=(h, w), seed=0, min_objects=4, max_objects=6)
    ds = open_dataset(data)
    n = sum(len(s.instances) for s in ds)
    net, state = build_models("mobile_sam", seed=0)
    reference = build_reference("mobile_sam", state)
    if reference is None:
        sys.exit("the MobileSAM package (mobilesam-mirror) is needed for the reference loop")
    reference.model.to(args.device)
    model = SAM(net, device=args.device)
    cold = EmbeddingStore(None, "cold", memory_items=0)  # never hits: every run encodes
    quiet = {"save": False, "verbose": False}
    print(f"{args.images} images {h}x{w}, {n} instances, MobileSAM seeded weights, {args.device}")

    rows = []
    for name, ours, ref in (
        ("box", lambda: val(model, ds, protocols="box", cache=cold, **quiet),
         lambda: reference_box(reference, ds)),
        (f"clicks ({args.clicks})",
         lambda: val(model, ds, protocols="clicks", max_clicks=args.clicks, early_stop=False,
                     cache=cold, **quiet),
         lambda: reference_clicks(reference, ds, args.clicks)),
    ):  # fmt: skip
        t_ref, ref_ious = timed(ref)
        t_ours, res = timed(ours)
        proto = name.split()[0]
        print(f"{name}: samkit {n / t_ours:.2f} instances/s (mIoU {res.metrics[proto]['miou']:.4f}),"
              f" reference loop {n / t_ref:.2f} instances/s (mIoU {np.mean(ref_ious):.4f})")  # fmt: skip
        rows.append(ratio_line(f"val {name}", t_ours, t_ref, against="the reference loop"))
    t_first, _ = timed(lambda: val(model, ds, protocols="box", **quiet))
    t_second, second = timed(lambda: val(model, ds, protocols="point", **quiet))
    assert second.speed[next(iter(second.speed))]["encoder_passes"] == 0
    rows.append(ratio_line("second protocol (point, memory cache) vs first (box, encoding)",
                           t_second, t_first, target=0.2, against="the first"))  # fmt: skip
    cache = root / "emb"
    t_disk_first, _ = timed(
        lambda: val(SAM(net, device=args.device), ds, protocols="box", cache=cache, **quiet)
    )
    t_disk_second, _ = timed(
        lambda: val(SAM(net, device=args.device), ds, protocols="point", cache=cache, **quiet)
    )
    rows.append(ratio_line("second protocol, disk cache, fresh model", t_disk_second, t_disk_first,
                           target=0.2, against="the first"))  # fmt: skip
    print("\n".join(rows))


if __name__ == "__main__":
    main()
