"""Distillation at the default batch (8) and input (1024 px) within a memory budget: the memory
plan ``samkit distill`` makes, the seconds per epoch and the peak resident memory it reaches,
and the refusal of an explicit batch that cannot fit (before any step).

    python benchmarks/bench_distill_memory.py                 # memory=12 (GB), 16 images
    python benchmarks/bench_distill_memory.py --memory 8 --images 40

The student is MobileSAM's TinyViT (seeded random weights) at 1024 px: what the step's memory
is made of. The teacher only fills the embedding cache once, before the first step, so a
reduced one (a 2-block ViT at 1024 px with the same 256 x 64 x 64 output) stands in for SAM-B
to keep the run short; the steps are the same. Each run is a fresh process.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def child(folder: str, memory: float, accumulate: int, project: str) -> dict[str, Any]:
    """One ``samkit.distill`` epoch in this process."""
    import torch

    from samkit.build import build_from_config
    from samkit.distillation.api import distill
    from samkit.errors import SamkitError
    from samkit.registry import SamConfig, ViTConfig

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.manual_seed(0)
    encoder = ViTConfig(embed_dim=64, depth=2, num_heads=2, global_attn_indexes=(1,))
    teacher = build_from_config(SamConfig(encoder=encoder))
    start = time.perf_counter()
    try:
        result = distill(teacher_model=teacher, student="mobile_sam", data=folder, epochs=1,
                         memory=memory, accumulate=accumulate, agreement=False, val_images=4,
                         project=project, progress=False, device="cpu")  # fmt: skip
    except SamkitError as e:
        return {"error": str(e), "seconds": time.perf_counter() - start}
    assert result is not None
    with open("/proc/self/status") as f:
        hwm = next(int(x.split()[1]) for x in f if x.startswith("VmHWM:")) / 2**20
    return {
        "epoch_s": result.rows[0]["time"],
        "peak_gb": hwm,
        "total_s": time.perf_counter() - start,
    }


def _run(folder: Path, memory: float, accumulate: int, project: Path) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE.parent / "src"), str(HERE)])}
    code = (f"import json, bench_distill_memory as b; print('RESULT', json.dumps(b.child("
            f"{str(folder)!r}, {memory}, {accumulate}, {str(project)!r})))")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    for line in out.stderr.splitlines():
        if line.startswith("memory:"):
            print("  plan:", line)
    found = [x for x in out.stdout.splitlines() if x.startswith("RESULT ")]
    if not found:
        print(out.stderr[-3000:])
        return {}
    return json.loads(found[-1][7:])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--memory", type=float, default=12.0, help="GB the process may use")
    ap.add_argument("--images", type=int, default=16)
    args = ap.parse_args()
    sys.path.insert(0, str(HERE))
    import cv2
    import numpy as np

    from common import machine_info, scene

    print(machine_info())
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "images"
        folder.mkdir()
        rng = np.random.default_rng(0)
        base = scene()
        for i in range(args.images):
            shifted = np.roll(base, int(rng.integers(0, 400)), axis=1)
            cv2.imwrite(str(folder / f"img{i:03d}.jpg"), shifted[..., ::-1])
        auto = _run(folder, args.memory, 0, Path(tmp) / "auto")
        if auto:
            print(f"batch=8 (default), memory={args.memory:g}: {auto['epoch_s']:.1f} s per epoch "
                  f"({args.images - 4} images), peak RSS {auto['peak_gb']:.2f} GB")  # fmt: skip
        whole = _run(folder, args.memory, 1, Path(tmp) / "whole")
        if whole.get("error"):
            print(f"batch=8 accumulate=1, memory={args.memory:g}: refused after "
                  f"{whole['seconds']:.1f} s: {whole['error']}")  # fmt: skip
        elif whole:
            print(f"batch=8 accumulate=1: ran, peak RSS {whole['peak_gb']:.2f} GB")


if __name__ == "__main__":
    main()
