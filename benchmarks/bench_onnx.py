"""ONNX Runtime (fp32 and int8) against samkit's torch engine, same seeded weights, one run.

    python benchmarks/bench_onnx.py                      # MobileSAM
    python benchmarks/bench_onnx.py --models mobile_sam,sam_b --repeats 5

Per model: export (with the ORT-vs-torch check), int8 dynamic quantisation, then CPU time of
the encoder (set_image on a 1280x720 image) and of the decoder (one point -> 3 masks at full
resolution) for torch, ORT fp32, ORT fp32 encoder + int8 decoder, and ORT int8 encoder + int8
decoder; file sizes; and mask agreement (mean IoU of the 3 masks over 24 point / box prompts)
of each ORT configuration against torch fp32.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from common import build_models, interleave, machine_info, markdown_table, scene
from samkit.backends.onnxruntime import OnnxPredictor
from samkit.export import export
from samkit.export.quantize import quantize_folder
from samkit.predictor import SamPredictor

NO_SPIN = {"session.intra_op.allow_spinning": "0"}
CONFIGS = {"ORT fp32": "fp32", "ORT int8 decoder": "int8_decoder", "ORT int8 enc+dec": "int8"}


def prompts(h: int, w: int, seed: int = 0) -> list[dict[str, Any]]:
    """16 single points and 8 boxes in original pixels."""
    rng = np.random.default_rng(seed)
    out: list[dict[str, Any]] = []
    for x, y in rng.uniform(0.1, 0.9, (16, 2)) * (w, h):
        out.append({"point_coords": np.array([[x, y]]), "point_labels": np.array([1])})
    for _ in range(8):
        x0, y0 = rng.uniform(0.0, 0.5, 2) * (w, h)
        bw, bh = rng.uniform(0.2, 0.5, 2) * (w, h)
        out.append({"box": np.array([x0, y0, x0 + bw, y0 + bh])})
    return out


def mean_iou(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    ious = []
    for x, y in zip(a, b, strict=True):
        inter = (x & y).sum(axis=(1, 2))
        union = (x | y).sum(axis=(1, 2))
        ious.extend(np.where(union > 0, inter / np.maximum(union, 1), 1.0).tolist())
    return float(np.mean(ious))


def bench_model(name: str, repeats: int, folder: Path) -> list[list[Any]]:
    model, _ = build_models(name, seed=0)
    print(f"\n== {name}: export to {folder}")
    export(model, format="onnx", output=folder, name=name)
    quantize_folder(folder)
    image = scene()
    h, w = image.shape[:2]
    point = {"point_coords": np.array([[w * 0.45, h * 0.4]]), "point_labels": np.array([1])}
    cases = prompts(h, w)
    # Interleaved (round-robin) timing, as in the other benchmarks: load drift on a shared
    # machine hits every engine alike. Idle ORT threads must not spin while torch runs.
    engines: dict[str, Any] = {"torch fp32": SamPredictor(model)}
    for k, p in CONFIGS.items():
        engines[k] = OnnxPredictor(folder, precision=p, session_config=NO_SPIN)
    enc = interleave({k: (lambda e=e: e.set_image(image)) for k, e in engines.items()}, repeats, 1)
    dec = interleave(
        {k: (lambda e=e: e.predict(**point)) for k, e in engines.items()}, 4 * repeats, 2
    )
    masks = {k: [e.predict(**c)[0] for c in cases] for k, e in engines.items()}

    sizes = {
        "torch fp32": (None, None),
        "ORT fp32": ("encoder.onnx", "decoder.onnx"),
        "ORT int8 decoder": ("encoder.onnx", "decoder.int8.onnx"),
        "ORT int8 enc+dec": ("encoder.int8.onnx", "decoder.int8.onnx"),
    }
    rows = []
    base_e, base_d = enc["torch fp32"].median, dec["torch fp32"].median
    for k in engines:
        e_file, d_file = sizes[k]
        size = (
            "-"
            if e_file is None
            else (
                f"{(folder / e_file).stat().st_size / 2**20:.1f} / {(folder / d_file).stat().st_size / 2**20:.1f}"
            )
        )
        rows.append(
            [
                name,
                k,
                f"{enc[k].median:.3f} s",
                f"{enc[k].median / base_e:.2f}x",
                f"{dec[k].median * 1e3:.1f} ms",
                f"{dec[k].median / base_d:.2f}x",
                size,
                f"{mean_iou(masks[k], masks['torch fp32']):.4f}",
                "-" if k == "torch fp32" else f"{mean_iou(masks[k], masks['ORT fp32']):.4f}",
            ]
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="mobile_sam", help="comma-separated variants")
    parser.add_argument("--repeats", type=int, default=3, help="timed encoder runs (decoder: 4x)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(machine_info())
    headers = [
        "model",
        "engine",
        "encoder",
        "vs torch",
        "decoder (1 point, 3 masks)",
        "vs torch",
        "files enc / dec (MiB)",
        "mask IoU vs torch",
        "mask IoU vs ORT fp32",
    ]
    rows: list[list[Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            rows += bench_model(name.strip(), args.repeats, Path(tmp) / f"{name}_onnx")
    print()
    print(markdown_table(headers, rows))


if __name__ == "__main__":
    main()
