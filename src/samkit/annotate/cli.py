"""``samkit annotate``: the command-line face of :func:`samkit.annotate.auto_annotate`."""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

from samkit.cli import UsageError

__all__ = ["cli_annotate", "engine_args", "parse_names"]


def parse_names(text: str | None) -> Any:
    """``names=`` on the command line: a JSON / Python list or dict, a data.yaml path, or
    comma-separated names (``person,car``)."""
    if text is None:
        return None
    stripped = text.strip()
    if stripped[:1] in "[{":
        try:
            return json.loads(stripped)
        except (json.JSONDecodeError, RecursionError):
            pass
        try:
            value = ast.literal_eval(stripped)  # literals only
        except (ValueError, SyntaxError, TypeError, RecursionError, MemoryError):
            value = None
            inner = stripped[1:-1].split(",") if stripped[-1:] == "]" else []
            if inner and all(n.strip() and not set(n) & set("[]{}'\"") for n in inner):
                value = [n.strip() for n in inner]  # [person,car] without quotes
        if not isinstance(value, (list, tuple, dict)):
            raise UsageError(
                f"bad value for names: {text!r} (expected a list like [person,car], "
                "a dict like {0: person}, a data.yaml path or person,car)"
            ) from None
        return value
    if Path(stripped).is_file():
        return stripped
    return [n.strip() for n in stripped.split(",") if n.strip()]


def cli_annotate(args: dict[str, Any]) -> int:
    """Run auto-annotation with the parsed keys; exit code 0 when every image was labelled
    (or skipped as done), 1 when some images failed (the run still completes)."""
    from samkit.annotate.run import auto_annotate

    classes = args["classes"]
    if isinstance(classes, (int, float)):
        classes = [int(classes)]
    summary = auto_annotate(
        args["data"],
        det_model=args["det_model"],
        sam_model=args["sam_model"],
        device=args["device"] or "",
        output_dir=args["output_dir"],
        conf=args["conf"],
        iou=args["iou"],
        imgsz=args["imgsz"],
        max_det=args["max_det"],
        classes=classes,
        format=args["format"],
        names=parse_names(args["names"]),
        segmentation=args["segmentation"],
        polygon_mode=args["polygon_mode"],
        tolerance=args["tolerance"],
        min_area=args["min_area"],
        overwrite=args["overwrite"],
        recursive=args["recursive"],
        decoder_batch=args["decoder_batch"],
        progress=args["progress"],
        **engine_args(args),
    )
    return 1 if summary.errors else 0


def engine_args(args: dict[str, Any]) -> dict[str, Any]:
    """``engine=`` and, for Ray, its options, from the parsed keys."""
    from samkit.cli import UsageError

    engine = args.get("engine", "local")
    if engine not in ("local", "ray"):
        raise UsageError(f"engine must be local or ray, got {engine!r}")
    if engine == "local":
        return {}
    from samkit.cluster import ray_options_from_args

    return {"engine": "ray", "ray": ray_options_from_args(args)}
