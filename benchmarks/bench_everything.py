"""Segment everything: reference / samkit exact / samkit fast, same image and weights, one run.

    python benchmarks/bench_everything.py                  # MobileSAM, 32x32 grid, 720x1280
    python benchmarks/bench_everything.py --grid 16 --skip-memory --modes exact,fast
    python benchmarks/bench_everything.py --scenes objects --skip-memory

Model: MobileSAM (TinyViT encoder with seeded random weights) whose prompt encoder and mask
decoder are deterministic weights of tests/amg_weights.py, so that the generator draws real
masks and the default filters keep a realistic number of them. Scenes (``SCENES``; generated,
``--scenes all`` runs every one):

- ``blobs`` (``blob_weights``): three nested discs centred on every prompt, so every grid point
  has masks of its own (the hardest case for skipping points); landscape (``--size``);
- ``objects`` (``object_weights`` + ``RegionEncoder``): masks made of whole regions of a
  40-region Voronoi tessellation, the same for every point of a region (as a real scene's masks
  are for the points on one object); landscape;
- ``portrait``: the blobs on a 1080x810 portrait frame (padding on the right of the model's
  square input);
- ``portrait-large``: portrait, discs of 15-85 % of the image (``LARGE_THRESH``), every mask
  above ``pred_iou_thresh`` (``HIGH_IOU``); ``portrait-large-few``: the same discs with the
  default predicted IoUs (part of the masks fail the filter); ``portrait-large-unfiltered``:
  those with ``pred_iou_thresh=0, stability_score_thresh=0``;
- ``objects-portrait-large``: the object scene on the portrait frame with large discs (masks
  of several regions).

TinyViT has no absolute position embedding, so the encoder is wrapped: it runs in full (its
cost is real) and its output is replaced by the features the decoder reads. Both
implementations get the very same modules.

Every configuration runs once, in a fresh subprocess (peak memory = the child's VmHWM, which
unlike ru_maxrss does not carry the parent's peak across fork + exec),
reference first, so that load drift on a shared machine hits all alike. Rows:

- reference: segment_anything-style ``mobile_sam.SamAutomaticMaskGenerator``;
- before (``--before OTHER/src``): another checkout's exact mode, for before / after tables;
- exact: samkit's default, same output as the reference (parity: tests/everything/test_automatic.py,
  test_scenes.py); "same masks" compares the (point, RLE) sets with the reference's;
- fast: ``fast=True`` (= ``skip_covered=True``, hierarchical sampling); lowres:
  ``low_res_filter=True``. Each against exact: recall (share of exact masks matched one to
  one at IoU >= 0.9) and the mean IoU of the matched pairs; points decoded / skipped.

``--profile N`` prints the exact row's top N cProfile items (internal time).

Targets (2-core CPU, 32x32 grid): exact <= 0.15 of the reference's time with the same masks;
fast <= 0.08 with recall >= 0.95 on object scenes; 4000x3000 with crop_n_layers=1 under 4 GB
peak.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pickle
import pstats
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MODES = {
    "exact": {},
    "fast": {"fast": True},
    "skip": {"skip_covered": True},
    "lowres": {"low_res_filter": True},
}


# ----------------------------------------------------------------------------- child side
N_REGIONS = 40
PORTRAIT = (1080, 810)  # H x W: padding on the right of the model's 1024 x 1024 frame


@dataclass(frozen=True)
class Scene:
    """One generated scene: ``model`` "blobs" (discs around each prompt) or "objects" (whole
    Voronoi regions); ``size`` (H, W), None for ``--size``; ``discs``: "small" (the default
    thresholds) or "large" (:data:`LARGE_THRESH`: masks of 15-85 % of the image); ``iou``:
    "default" (some masks fail ``pred_iou_thresh``) or "high" (all pass); ``filters``: False to
    run with ``pred_iou_thresh=0, stability_score_thresh=0``."""

    model: str
    size: tuple[int, int] | None = None
    discs: str = "small"
    iou: str = "default"
    filters: bool = True

    def params(self) -> dict[str, float]:
        return {} if self.filters else {"pred_iou_thresh": 0.0, "stability_score_thresh": 0.0}


SCENES = {
    "blobs": Scene("blobs"),
    "objects": Scene("objects"),
    "portrait": Scene("blobs", PORTRAIT),
    "portrait-large": Scene("blobs", PORTRAIT, discs="large", iou="high"),
    "portrait-large-few": Scene("blobs", PORTRAIT, discs="large"),
    "portrait-large-unfiltered": Scene("blobs", PORTRAIT, discs="large", filters=False),
    "objects-portrait-large": Scene("objects", PORTRAIT, discs="large"),
}


def _models(impl: str, scene: str = "blobs") -> Any:
    sys.path.insert(0, str(ROOT / "tests"))
    import torch

    from amg_weights import (
        HIGH_IOU,
        IOU_BASE,
        LARGE_THRESH,
        THRESH,
        LocationEncoder,
        RegionEncoder,
        blob_weights,
        object_weights,
    )
    from reference import randomize, reference_mobile_sam

    spec = SCENES[scene]
    ref = reference_mobile_sam()
    weights = blob_weights if spec.model == "blobs" else object_weights
    thresh = LARGE_THRESH if spec.discs == "large" else THRESH
    state = weights(randomize(ref, 0), thresh, HIGH_IOU if spec.iou == "high" else IOU_BASE)
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
    if spec.model == "blobs":
        model.image_encoder = LocationEncoder(model.image_encoder)
    else:
        model.image_encoder = RegionEncoder(model.image_encoder, N_REGIONS)
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
    model = _models(spec["impl"], spec.get("scene", "blobs"))
    image = _image(*spec["size"])
    params = dict(spec["params"], output_mode="uncompressed_rle")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if spec["impl"] == "reference":
            from mobile_sam import SamAutomaticMaskGenerator as Generator
        else:
            from samkit import SamAutomaticMaskGenerator as Generator  # type: ignore[assignment]
        gen = Generator(model, **params)
        profiler = cProfile.Profile() if spec.get("profile") else None
        t0 = time.perf_counter()
        if profiler is not None:
            profiler.enable()
        records = gen.generate(image)
        if profiler is not None:
            profiler.disable()
        seconds = time.perf_counter() - t0
    stats = getattr(gen, "stats", None)
    profile = ""
    if profiler is not None:
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(spec["profile"])
        profile = text.getvalue()
    from common import max_rss_bytes

    peak_mib = max_rss_bytes() / 2**20
    keep = ("segmentation", "predicted_iou", "stability_score", "bbox", "point_coords")
    with open(out_path, "wb") as f:
        pickle.dump(
            {
                "seconds": seconds,
                "peak_mib": peak_mib,
                "records": [{k: r[k] for k in keep} for r in records],
                "stats": stats.as_dict() if stats is not None else {},
                "profile": profile,
            },
            f,
        )


# ---------------------------------------------------------------------------- parent side
def run(spec: dict[str, Any], timeout: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "out.pkl")
        cmd = [sys.executable, __file__, "--child", json.dumps(spec), out]
        env = dict(os.environ)
        if spec.get("src"):  # another checkout's samkit (the "before" row)
            env["PYTHONPATH"] = spec["src"]
        proc = subprocess.run(cmd, timeout=timeout, capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            raise RuntimeError(f"child {spec} failed:\n{proc.stderr[-3000:]}")
        with open(out, "rb") as f:
            result: dict[str, Any] = pickle.load(f)
    label = f"{spec.get('scene', 'blobs'):<26} {spec['impl']:<10} {spec['name']:<12}"
    print(
        f"  {label} {result['seconds']:8.1f} s  peak {result['peak_mib']:7.0f} MiB  masks {len(result['records'])}",
        flush=True,
    )
    if result.get("profile"):
        print(result["profile"], flush=True)
    return result


def agreement(exact: list[dict[str, Any]], other: list[dict[str, Any]]) -> tuple[float, float]:
    """(recall, mean matched IoU): masks of ``other`` matched one to one to ``exact`` greedily
    by IoU; recall = share of exact masks matched at IoU >= 0.9, mean IoU over matched pairs."""
    from samkit.masks import rle_to_mask

    if not exact or not other:
        return (1.0 if not exact else 0.0), 0.0
    a = np.stack([rle_to_mask(r["segmentation"]).ravel() for r in exact]).astype(np.float32)
    b = np.stack([rle_to_mask(r["segmentation"]).ravel() for r in other]).astype(np.float32)
    inter = a @ b.T
    iou = inter / (a.sum(1)[:, None] + b.sum(1)[None] - inter)
    used_a, used_b, ious = set(), set(), []
    for flat in np.argsort(-iou, axis=None, kind="stable"):
        i, j = divmod(int(flat), iou.shape[1])
        if iou[i, j] <= 0:
            break
        if i not in used_a and j not in used_b:
            used_a.add(i)
            used_b.add(j)
            ious.append(float(iou[i, j]))
    ious_arr = np.array(ious)
    return float((ious_arr >= 0.9).sum() / len(exact)), float(ious_arr.mean()) if ious else 0.0


def identical(ref: list[dict[str, Any]], ours: list[dict[str, Any]]) -> bool:
    """Whether both runs kept the same masks: the same (point, RLE) pairs, in any order."""

    def key(r: dict[str, Any]) -> tuple[Any, ...]:
        seg = r["segmentation"]
        return (tuple(r["point_coords"][0]), tuple(seg["size"]), tuple(seg["counts"]))

    return sorted(map(key, ref)) == sorted(map(key, ours))


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", type=int, default=32, help="points per side (default 32)")
    parser.add_argument("--size", default="720x1280", help="HxW of the landscape scenes")
    parser.add_argument("--modes", default="exact,fast", help=f"samkit rows, of {','.join(MODES)}")
    parser.add_argument(
        "--scenes", default="blobs,objects", help=f"comma-separated, of {','.join(SCENES)} or all"
    )
    parser.add_argument("--skip-reference", action="store_true", help="samkit rows only")
    parser.add_argument(
        "--skip-memory", action="store_true", help="skip the 4000x3000 crop-layer run"
    )
    parser.add_argument(
        "--before", default="", help="another checkout's src/ folder: adds its exact row"
    )
    parser.add_argument(
        "--profile", type=int, default=0, help="print this many top cProfile items (exact)"
    )
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--timeout", type=float, default=3600)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    return parser.parse_args()


def main() -> None:
    args = _arguments()
    if args.child:
        child(json.loads(args.child[0]), args.child[1])
        return
    h, w = (int(v) for v in args.size.split("x"))
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if "exact" not in modes:
        modes.insert(0, "exact")
    scenes = [s.strip() for s in args.scenes.split(",") if s.strip()]
    scenes = list(SCENES) if scenes == ["all"] else scenes
    unknown = sorted(set(scenes) - set(SCENES)) + sorted(set(modes) - set(MODES))
    if unknown:
        raise SystemExit(
            f"unknown scene or mode {unknown}: scenes {tuple(SCENES)}, modes {tuple(MODES)}"
        )
    print(f"segment everything, MobileSAM, {args.grid}x{args.grid} grid")
    print(f"cpu count {os.cpu_count()}, load average {os.getloadavg()}")
    for scene in scenes:
        spec_scene = SCENES[scene]
        size = list(spec_scene.size or (h, w))
        params = dict(spec_scene.params(), points_per_side=args.grid)
        base = {"size": size, "threads": args.threads, "name": "defaults", "scene": scene}
        results: dict[str, dict[str, Any]] = {}
        print(f"scene {scene}: {size[0]}x{size[1]}, {spec_scene}")
        if not args.skip_reference:
            results["reference"] = run(dict(base, impl="reference", params=params), args.timeout)
        if args.before:
            spec = dict(base, impl="samkit", name="before", params=params, src=args.before)
            results["before"] = run(spec, args.timeout)
        for mode in modes:
            spec = dict(base, impl="samkit", name=mode, params=dict(params, **MODES[mode]))
            if mode == "exact" and args.profile:
                spec["profile"] = args.profile
            results[mode] = run(spec, args.timeout)
        print(f"load average after: {os.getloadavg()}")
        print(f"\nscene: {scene}")
        _table(results, (["before"] if args.before else []) + modes)
        print()
    if not args.skip_memory:
        spec = {
            "impl": "samkit",
            "scene": scenes[0],
            "threads": args.threads,
            "name": "4000x3000 crop_n_layers=1",
            "size": [3000, 4000],
            "params": {"points_per_side": args.grid, "crop_n_layers": 1},
        }
        mem = run(spec, args.timeout)
        ok = mem["peak_mib"] < 4096
        print(
            f"4000x3000, crop_n_layers=1: peak {mem['peak_mib']:.0f} MiB (target < 4096) {'PASS' if ok else 'MISS'}"
        )


def _table(results: dict[str, dict[str, Any]], modes: list[str]) -> None:
    ref = results.get("reference")
    exact = results["exact"]
    print()
    print(
        "| row | time | x reference | masks | same masks as reference | points decoded / skipped | recall@0.9 vs exact | mean matched IoU |"
    )
    print("|---|---|---|---|---|---|---|---|")
    if ref:
        rec, miou = agreement(exact["records"], ref["records"])
        print(
            f"| reference | {ref['seconds']:.1f} s | 1.000 | {len(ref['records'])} | - | - | (exact vs ref) {rec:.3f} | {miou:.4f} |"
        )
    verdicts = []
    for mode in modes:
        r = results[mode]
        ratio = r["seconds"] / ref["seconds"] if ref else float("nan")
        st = r.get("stats", {})
        pts = f"{st.get('decoded', '-')} / {st.get('skipped', '-')}"
        rec, miou = agreement(exact["records"], r["records"]) if mode != "exact" else (1.0, 1.0)
        same = "-"
        if ref and mode in ("exact", "before"):
            same = "yes" if identical(ref["records"], r["records"]) else "NO"
        print(
            f"| {mode} | {r['seconds']:.1f} s | {ratio:.3f} | {len(r['records'])} | {same} | {pts} | {rec:.3f} | {miou:.4f} |"
        )
        if ref and mode == "exact":
            ok = ratio <= 0.15 and same == "yes"
            verdicts.append(
                f"exact {ratio:.3f}x the reference (target <= 0.15, same masks) {'PASS' if ok else 'MISS'}"
            )
        if ref and mode == "fast":
            ok = ratio <= 0.08 and rec >= 0.95
            verdicts.append(
                f"fast {ratio:.3f}x the reference (target <= 0.08), recall {rec:.3f} (>= 0.95) {'PASS' if ok else 'MISS'}"
            )
    print()
    for line in verdicts:
        print(line)


if __name__ == "__main__":
    main()
