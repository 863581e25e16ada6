"""SAM 2.1 on images, samkit vs Meta's ``sam2`` (1.1.0) in one run: encoder (``set_image``),
one click to full-resolution masks (``predict``), and samkit's bf16 encoder against its fp32
one. Same seeded weights (the parity tests'), written once in the official format.

    python benchmarks/bench_sam2.py [--size tiny] [--repeats 3] [--device cpu]

Prints ratios (lower is better) against the issue's goals: encoder <= 0.6x, one click <= 0.35x.
"""

from __future__ import annotations

import argparse
import tempfile
import warnings
from pathlib import Path

import numpy as np

from common import interleave, machine_info, ratio_line, scene


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="tiny", choices=("tiny", "small"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    from sam2_reference import meta_model, meta_predictor, samkit_model, write_checkpoint
    from samkit.sam2 import SAM2ImagePredictor
    from samkit.sam2.engine import Sam2Predictor

    print(machine_info())
    ref = meta_model(args.size, 1024, seed=0).to(args.device)
    with tempfile.TemporaryDirectory() as tmp:
        path = write_checkpoint(ref, Path(tmp) / f"sam2.1_{args.size}.pt")
        net = samkit_model(path, args.size).to(args.device)
    theirs, ours = meta_predictor(ref), SAM2ImagePredictor(net)
    image = scene()
    point, label = np.array([[640.0, 360.0]]), np.array([1])

    enc = interleave(
        {"samkit": lambda: ours.set_image(image), "meta": lambda: theirs.set_image(image)},
        repeats=args.repeats,
    )
    print(ratio_line("encoder (set_image)", enc["samkit"].median, enc["meta"].median, 0.6))
    click = interleave(
        {
            "samkit": lambda: ours.predict(point, label),
            "meta": lambda: theirs.predict(point, label),
        },
        repeats=5 * args.repeats,
    )
    print(ratio_line("one click -> masks", click["samkit"].median, click["meta"].median, 0.35))
    fp32, bf16 = Sam2Predictor(net), Sam2Predictor(net, dtype="bf16")
    prec = interleave(
        {"bf16": lambda: bf16.set_image(image), "fp32": lambda: fp32.set_image(image)},
        repeats=args.repeats,
    )
    print(ratio_line("samkit bf16 encoder", prec["bf16"].median, prec["fp32"].median, None, "fp32"))


if __name__ == "__main__":
    main()
