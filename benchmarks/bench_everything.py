"""Segment everything: samkit against the reference generator, same image and weights, one run.

    python benchmarks/bench_everything.py                 # full table (~10 min on 2 cores)
    python benchmarks/bench_everything.py --skip-reference-off --grid 16

Model: MobileSAM (TinyViT encoder with seeded random weights) whose prompt encoder and mask
decoder are the deterministic "blob" weights of tests/amg_weights.py, so that the generator
draws real masks (nested discs around every prompt) and the default filters keep a realistic
number of them. TinyViT has no absolute position embedding, so the encoder is wrapped: it runs
in full (its cost is real) and its output is replaced by the location features the blob decoder
reads. Both implementations get the very same modules.

Every configuration runs once, in a fresh subprocess (peak memory = the child's ru_maxrss),
interleaved reference / samkit so that load drift on a shared machine hits both. Rows:

- reference: segment_anything-style ``mobile_sam.SamAutomaticMaskGenerator``;
- samkit exact: same output as the reference (parity tests: tests/test_automatic.py);
- samkit fast: opt-in ``low_res_filter=True``; reported with its agreement against
  samkit exact (mean matched mask IoU, mask counts).

Targets (2-core CPU): exact <= 1/4 of the reference's time; fast <= 1/10 with mean matched IoU
>= 0.98 and mask count within 5 % of exact; 4000x3000 with crop_n_layers=1 under 4 GB peak.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
FILTERS_OFF = {"pred_iou_thresh": 0.0, "stability_score_thresh": 0.0}
FAST = {"low_res_filter": True}


# ----------------------------------------------------------------------------- child side
def _models(impl: str) -> Any:
    sys.path.insert(0, str(ROOT / "tests"))
    import torch

    from amg_weights import LocationEncoder, blob_weights
    from reference import randomize, reference_mobile_sam

    ref = reference_mobile_sam()
    state = blob_weights(randomize(ref, 0))
    if impl == "reference":
        ref.load_state_dict(state)
        model = ref.eval()
    else:
        from samkit.build import build_from_config
        from samkit.registry import VARIANTS

        model = build_from_config(VARIANTS["mobile_sam"].config)
        unused = ("image_encoder.head.", "image_encoder.norm_head.")  # TinyViT's classifier
        model.load_state_dict({k: v for k, v in state.items() if not k.startswith(unused)})
        model.eval()
    model.image_encoder = LocationEncoder(model.image_encoder)
    torch.manual_seed(0)
    return model


def _image(h: int, w: int) -> np.ndarray:
    sys.path.insert(0, str(ROOT / "tests"))
    from reference import make_image

    return make_image(h, w, seed=1)


def child(spec: dict[str, Any], out_path: str) -> None:
    """Build, run ``generate`` once, write timing, peak memory and the masks (RLE) to out_path."""
    import torch

    if spec.get("threads"):
        torch.set_num_threads(spec["threads"])
    model = _models(spec["impl"])
    image = _image(*spec["size"])
    params = dict(spec["params"], output_mode="uncompressed_rle")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if spec["impl"] == "reference":
            from mobile_sam import SamAutomaticMaskGenerator as Generator
        else:
            from samkit import SamAutomaticMaskGenerator as Generator  # type: ignore[assignment]
        gen = Generator(model, **params)
        t0 = time.perf_counter()
        records = gen.generate(image)
        seconds = time.perf_counter() - t0
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    keep = ("segmentation", "predicted_iou", "stability_score", "bbox", "point_coords")
    with open(out_path, "wb") as f:
        pickle.dump(
            {
                "seconds": seconds,
                "peak_mib": peak_mib,
                "records": [{k: r[k] for k in keep} for r in records],
            },
            f,
        )


# ---------------------------------------------------------------------------- parent side
def run(spec: dict[str, Any], timeout: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "out.pkl")
        cmd = [sys.executable, __file__, "--child", json.dumps(spec), out]
        proc = subprocess.run(cmd, timeout=timeout, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"child {spec} failed:\n{proc.stderr[-3000:]}")
        with open(out, "rb") as f:
            result: dict[str, Any] = pickle.load(f)
    label = f"{spec['impl']:<14} {spec['name']:<12}"
    print(
        f"  {label} {result['seconds']:8.1f} s  peak {result['peak_mib']:7.0f} MiB  masks {len(result['records'])}",
        flush=True,
    )
    return result


def agreement(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> tuple[float, int]:
    """Mean IoU over a one-to-one greedy matching of masks ``b`` to ``a`` (unmatched masks of
    the larger side count as IoU 0), and the number of pairs with IoU >= 0.99."""
    from samkit.masks import rle_to_mask

    if not a or not b:
        return (1.0 if not a and not b else 0.0), 0
    box_a = np.array([r["bbox"] for r in a], dtype=np.float64)
    box_b = np.array([r["bbox"] for r in b], dtype=np.float64)
    ma = [rle_to_mask(r["segmentation"]) for r in a]
    mb = [rle_to_mask(r["segmentation"]) for r in b]
    pairs = []
    for i in range(len(a)):
        x1 = np.maximum(box_a[i, 0], box_b[:, 0])
        x2 = np.minimum(box_a[i, 0] + box_a[i, 2], box_b[:, 0] + box_b[:, 2])
        y1 = np.maximum(box_a[i, 1], box_b[:, 1])
        y2 = np.minimum(box_a[i, 1] + box_a[i, 3], box_b[:, 1] + box_b[:, 3])
        for j in np.flatnonzero((x2 >= x1) & (y2 >= y1)):
            inter = np.logical_and(ma[i], mb[j]).sum()
            if inter:
                pairs.append((inter / np.logical_or(ma[i], mb[j]).sum(), i, int(j)))
    pairs.sort(reverse=True)
    used_a, used_b, ious = set(), set(), []
    for iou, i, j in pairs:
        if i not in used_a and j not in used_b:
            used_a.add(i)
            used_b.add(j)
            ious.append(iou)
    total = max(len(a), len(b))
    return float(np.sum(ious) / total), int(np.sum(np.array(ious) >= 0.99))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", type=int, default=32, help="points per side (default 32)")
    parser.add_argument("--size", default="720x1280", help="HxW of the main image")
    parser.add_argument(
        "--skip-reference-off",
        action="store_true",
        help="skip the ~4 min reference run with filters off",
    )
    parser.add_argument("--skip-reference", action="store_true", help="samkit rows only")
    parser.add_argument(
        "--skip-memory", action="store_true", help="skip the 4000x3000 crop-layer run"
    )
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(json.loads(args.child[0]), args.child[1])
        return
    h, w = (int(v) for v in args.size.split("x"))
    print(
        f"segment everything, MobileSAM (blob decoder), {h}x{w} image, {args.grid}x{args.grid} grid"
    )
    print(f"cpu count {os.cpu_count()}, load average {os.getloadavg()}")
    base = {"size": [h, w], "threads": args.threads}
    results: dict[tuple[str, str], dict[str, Any]] = {}
    for name, filt in (("defaults", {}), ("filters off", FILTERS_OFF)):
        params = dict(filt, points_per_side=args.grid)
        rows = [("samkit exact", params), ("samkit fast", dict(params, **FAST))]
        skip_ref = args.skip_reference or (args.skip_reference_off and filt)
        if not skip_ref:
            rows.insert(1, ("reference", params))
        print(f"[{name}]")
        for impl, p in rows:
            spec = dict(base, impl=impl, name=name, params=p)
            results[(impl, name)] = run(spec, args.timeout)
    print()
    print(
        "| setting | reference | samkit exact | samkit fast | exact/ref | fast/ref | fast vs exact (mean IoU, masks) |"
    )
    print("|---|---|---|---|---|---|---|")
    verdicts = []
    for name in ("defaults", "filters off"):
        ref = results.get(("reference", name))
        ex, fa = results[("samkit exact", name)], results[("samkit fast", name)]
        miou, _ = agreement(ex["records"], fa["records"])
        n_ex, n_fa = len(ex["records"]), len(fa["records"])
        ref_s = f"{ref['seconds']:.1f} s ({len(ref['records'])})" if ref else "-"
        r_ex = f"{ex['seconds'] / ref['seconds']:.3f}" if ref else "-"
        r_fa = f"{fa['seconds'] / ref['seconds']:.3f}" if ref else "-"
        print(
            f"| {name} | {ref_s} | {ex['seconds']:.1f} s ({n_ex}) | {fa['seconds']:.1f} s ({n_fa}) | {r_ex} | {r_fa} | {miou:.4f}, {n_fa} vs {n_ex} |"
        )
        if ref:
            miou_ref, _ = agreement(ref["records"], ex["records"])
            verdicts.append(
                f"{name}: exact vs reference mean matched IoU {miou_ref:.4f} ({n_ex} vs {len(ref['records'])} masks)"
            )
            ok = ex["seconds"] <= ref["seconds"] / 4
            verdicts.append(
                f"{name}: exact {ex['seconds'] / ref['seconds']:.3f}x the reference (target <= 0.25) {'PASS' if ok else 'MISS'}"
            )
            count_ok = abs(n_fa - n_ex) <= 0.05 * max(n_ex, 1)
            ok = fa["seconds"] <= ref["seconds"] / 10 and miou >= 0.98 and count_ok
            verdicts.append(
                f"{name}: fast {fa['seconds'] / ref['seconds']:.3f}x the reference (target <= 0.10), "
                f"mean IoU {miou:.4f} (>= 0.98), masks {n_fa}/{n_ex} (within 5 %) {'PASS' if ok else 'MISS'}"
            )
    if not args.skip_memory:
        spec = dict(
            base,
            impl="samkit exact",
            name="4000x3000 crop_n_layers=1",
            size=[3000, 4000],
            params={"points_per_side": args.grid, "crop_n_layers": 1},
        )
        mem = run(spec, args.timeout)
        ok = mem["peak_mib"] < 4096
        verdicts.append(
            f"4000x3000, crop_n_layers=1: peak {mem['peak_mib']:.0f} MiB (target < 4096) {'PASS' if ok else 'MISS'}"
        )
    print()
    for line in verdicts:
        print(line)


if __name__ == "__main__":
    main()
