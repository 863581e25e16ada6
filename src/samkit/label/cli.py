"""``samkit label``: the command-line face of :func:`samkit.label.serve`."""

from __future__ import annotations

from typing import Any

__all__ = ["cli_label"]


def cli_label(args: dict[str, Any]) -> int:
    """Serve the annotator with the parsed keys until interrupted."""
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
    )
    return 0
