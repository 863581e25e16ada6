"""``samkit label``: the command-line face of :func:`samkit.label.serve`."""

from __future__ import annotations

import os
from typing import Any

__all__ = ["cli_label"]


def cli_label(args: dict[str, Any]) -> int:
    """Serve the annotator with the parsed keys until interrupted."""
    # An interactive server sits idle between clicks, usually beside the browser on the same
    # machine: OpenMP threads that spin while waiting would take the CPU the page needs (and,
    # on a busy machine, made a one-point decode ~10x slower; see benchmarks/README.md).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from samkit.label import serve

    serve(
        args["images"],
        args["model"],
        args["classes"],
        host=args["host"],
        port=args["port"],
        output_dir=args["output_dir"],
        token=args["token"],
        device=args["device"],
        formats=args["format"],
        prefetch=args["prefetch"],
        cache_dir=args["cache_dir"],
        recursive=args["recursive"],
        det_model=args["det_model"],
        import_coco=args["import_coco"],
    )
    return 0
