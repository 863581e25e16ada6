"""samkit vs the reference implementations, in one run on this machine, same weights.

    python benchmarks/bench_engine.py                       # MobileSAM and SAM-B
    python benchmarks/bench_engine.py --models mobile_sam --repeats 7 --json out.json

Tasks: encoder (set_image), one point to full-resolution masks, 100 boxes in one call; samkit
fp32 and bf16 against Meta's segment_anything / the MobileSAM package (and Ultralytics when
installed). Prints medians of interleaved runs, ratios against the targets, peak memory and the
comparison table. Segment-everything: benchmarks/bench_everything.py. ``samkit benchmark``
runs this script from a source checkout.
"""

from __future__ import annotations

import argparse
import os

# Before torch loads OpenMP: threads that sleep instead of spinning at barriers. On a shared or
# oversubscribed CPU, spinning threads made 2-thread runs up to 10x slower (both engines alike).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from engine_suite import run_engine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="mobile_sam,sam_b", help="comma-separated variants")
    parser.add_argument(
        "--repeats", type=int, default=None, help="timed runs per task (default 5 / 3)"
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: cores)"
    )
    parser.add_argument("--no-bf16", action="store_true", help="skip samkit bf16")
    parser.add_argument("--no-reference", action="store_true", help="skip the reference packages")
    parser.add_argument("--no-ultralytics", action="store_true", help="skip Ultralytics rows")
    parser.add_argument("--no-memory", action="store_true", help="skip peak-memory children")
    parser.add_argument("--json", default=None, help="write raw timings here")
    args = parser.parse_args()
    run_engine(
        models=[m.strip() for m in args.models.split(",") if m.strip()],
        repeats=args.repeats,
        bf16=not args.no_bf16,
        reference=not args.no_reference,
        ultralytics=not args.no_ultralytics,
        memory=not args.no_memory,
        threads=args.threads,
        json_path=args.json,
    )


if __name__ == "__main__":
    main()
