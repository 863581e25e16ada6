"""``samkit val``: the command-line face of :func:`samkit.evaluation.val`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["cli_val"]


def cli_val(args: dict[str, Any]) -> int:
    """Run val with the parsed keys; a bad setting is a usage error (exit 2)."""
    from samkit.cli import UsageError
    from samkit.errors import SamkitError
    from samkit.evaluation.runner import check_settings, val
    from samkit.evaluation.settings import ValSettings

    protocols = tuple(p.strip() for p in str(args["protocols"]).split(",") if p.strip())
    options: dict[str, Any] = {
        k: args[k]
        for k in (
            "select",
            "box_jitter",
            "min_area",
            "averaging",
            "max_clicks",
            "early_stop",
            "seed",
            "batch",
            "detections",
            "teacher",
        )
    }
    if args["points_per_side"] is not None:
        options["everything"] = {"points_per_side": args["points_per_side"]}
    for key in ("data", "images"):
        if args[key] is not None and not Path(args[key]).exists():
            raise UsageError(f"{key} {args[key]!r} does not exist")
    try:
        check_settings(ValSettings(protocols=protocols, **options), args["max_images"])
    except SamkitError as e:
        raise UsageError(str(e)) from None
    val(
        args["model"],
        args["data"],
        args["images"],
        protocols,
        device=args["device"],
        backend=args["backend"],
        cache=args["cache"],
        save=args["save"],
        project=args["project"],
        name=args["name"],
        plots=args["plots"],
        progress=args["progress"],
        max_images=args["max_images"],
        **options,
    )
    return 0
