"""Handlers of the built-in CLI modes (see :mod:`samkit.cli`): each takes the parsed keys and
returns an exit code; all work goes through the public API."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from samkit.call_args import CallOptions, write_result
from samkit.cli_grammar import UsageError
from samkit.cli_table import EVERYTHING_KEYS, PREDICT_KEYS, ULTRALYTICS_PREDICT_KEYS
from samkit.errors import SamkitError, SourceError
from samkit.io_utils import increment_path
from samkit.video_out import VideoWriters

__all__ = [
    "download",
    "embed",
    "increment_path",
    "info",
    "models",
    "predict",
    "sample",
    "write_result",
]

logger = logging.getLogger("samkit")

# Ultralytics' predict keys handed to SAM.predict, and those the run's writers use.
_PASSED = ("imgsz", "max_det", "vid_stride", "retina_masks")
_WRITING = ("save_conf", "show_labels", "show_conf", "show_boxes", "line_width")
PREDICT_DEFAULTS = {k: key.default for k, key in ULTRALYTICS_PREDICT_KEYS.items()}


def _check_run_folder(project: str, name: str) -> None:
    """``name`` must be one folder name and ``project`` a folder (or not yet there), so the
    run folder lies inside ``project``; checked before the model loads."""
    parts = Path(name).parts
    if len(parts) != 1 or parts[0] in ("..", ".") or Path(name).is_absolute() or "\\" in name:
        raise UsageError(f"name must be a single folder name inside project, got {name!r}")
    base = Path(project)
    for folder in (base, base / name):
        if folder.exists() and not folder.is_dir():
            raise UsageError(f"{str(folder)!r} is a file; project/name must be folders")


def _load_mask_prompt(path: str) -> np.ndarray:
    p = Path(path)
    if not p.is_file():
        raise SourceError(f"masks file {path!r} does not exist")
    if p.suffix.lower() == ".npy":
        return np.load(p, allow_pickle=False)
    from samkit.sources import read_image

    return read_image(p).max(axis=2) > 0


def _stem(result: Any, used: set[str]) -> str:
    stem = Path(result.path).stem if result.path else "image"
    if result.frame is not None:
        stem = f"{stem}_{result.frame:06d}"
    candidate, k = stem, 2
    while candidate in used:
        candidate, k = f"{stem}_{k}", k + 1
    used.add(candidate)
    return candidate


def predict(args: dict[str, Any]) -> int:
    """``samkit predict``: segment, then write overlays, labels and predictions.json into a
    new run folder."""
    from samkit.model import SAM

    prompts = {k: args[k] for k in ("points", "labels", "bboxes")}
    if args["masks"] is not None:
        prompts["masks"] = _load_mask_prompt(args["masks"])
    prompted = any(v is not None for v in prompts.values())
    everything = {k: args[k] for k in EVERYTHING_KEYS if args.get(k) is not None}
    source = args["source"]
    if args["task"] not in (None, "segment"):
        raise UsageError(f"task must be segment (SAM segments), got {args['task']!r}")
    _check_run_folder(args["project"], args["name"])
    if not source.strip():
        raise UsageError("source is empty: give an image, folder, glob, URL or video")
    if (
        not any(c in source for c in "*?[")
        and not source.lower().startswith(("http://", "https://"))
        and not Path(source).exists()
    ):
        raise SourceError(f"source {source!r} does not exist")
    from samkit.annotate.cli import engine_args

    if engine_args(args):
        if prompted:
            raise UsageError("engine=ray runs segment everything over a folder: give no prompts")
        local = [k for k in (*_PASSED, *_WRITING) if args[k] != PREDICT_DEFAULTS[k]]
        if [k for k in local if k != "retina_masks"]:
            raise UsageError(f"{', '.join(local)} apply to local runs only (not engine=ray)")
        return _predict_on_ray(args, everything)
    model = SAM(args["model"], device=args["device"], decoder_batch=args["decoder_batch"])
    options = {k: args[k] for k in _PASSED if args[k] is not None}
    if prompted:
        options |= {k: args[k] for k in ("multimask_output", "keep_all", "conf")}
    stream = model.predict(
        source, stream=True, recursive=args["recursive"], progress=args["progress"],
        **prompts, **options, **everything,
    )  # fmt: skip
    opts = CallOptions(**{k: args[k] for k in _WRITING})
    opts.save, opts.save_txt = args["save"], args["save_txt"]
    run_dir: Path | None = None
    images: list[dict[str, Any]] = []
    used: set[str] = set()
    counts = {"images": 0, "frames": 0, "masks": 0}
    videos = VideoWriters(args["vid_stride"])
    try:
        for result in stream:
            if run_dir is None:
                run_dir = increment_path(args["project"], args["name"], args["exist_ok"])
            stem = _stem(result, used)
            write_result(result, run_dir, stem, opts, videos)
            if args["save_json"]:
                images.append({"file": stem, **result.image_summary()})
            counts["frames" if result.frame is not None else "images"] += 1
            counts["masks"] += len(result)
    finally:
        videos.close()
    skipped = model.last_run.skipped
    if run_dir is None:
        raise SourceError(f"no readable image in {source!r} ({len(skipped)} skipped)")
    return _finish_predict(args, everything, run_dir, images, skipped, counts, videos)


def _finish_predict(
    args: dict[str, Any],
    everything: dict[str, Any],
    run_dir: Path,
    images: list[dict[str, Any]],
    skipped: list[dict[str, str]],
    counts: dict[str, int],
    videos: VideoWriters | None = None,
) -> int:
    """Write ``predictions.json`` and print the run's one-line summary (video frames counted
    as frames, and each saved video named)."""
    if args["save_json"]:
        from samkit.io_utils import atomic_write_text

        keys = {k: v for k, v in args.items() if k in PREDICT_KEYS or k in everything}
        summary = {
            "args": keys,
            "images": images,
            "skipped": skipped,
            "counts": {"images": len(images), "masks": counts["masks"], "skipped": len(skipped)},
        }
        atomic_write_text(run_dir / "predictions.json", json.dumps(summary))
    what = [f"{counts['images']} image(s)"] if counts["images"] or not counts["frames"] else []
    if counts["frames"]:
        what.append(f"{counts['frames']} video frame(s)")
    saved = [p.name for p in videos.paths.values()] if videos is not None else []
    extra = f", {len(skipped)} skipped" if skipped else ""
    extra += f", video {', '.join(saved)}" if saved else ""
    print(f"{', '.join(what)}, {counts['masks']} mask(s){extra} -> {run_dir}")
    return 0


def _predict_on_ray(args: dict[str, Any], everything: dict[str, Any]) -> int:
    """``samkit predict source=folder/ engine=ray``: segment everything on a Ray cluster."""
    from samkit.annotate.images import list_images
    from samkit.cluster import ray_options_from_args
    from samkit.cluster.everything import everything_on_ray
    from samkit.cluster.runtime import model_spec
    from samkit.model import SAM

    options = ray_options_from_args(args)
    if Path(args["source"]).is_file():
        raise UsageError("engine=ray segments a folder (or a glob) of images; source is one file")
    _, found = list_images(args["source"], args["recursive"])
    SAM(args["model"], device=args["device"])._automatic(everything)  # settings checked first
    used: set[str] = set()
    pairs = []
    for path, _rel in found:
        stem, k = path.stem, 2
        while stem in used:
            stem, k = f"{path.stem}_{k}", k + 1
        used.add(stem)
        pairs.append((str(path), stem))
    run_dir = increment_path(args["project"], args["name"], args["exist_ok"])
    images, skipped, _ = everything_on_ray(
        pairs, model_spec(args["model"], args["device"]), everything, run_dir,
        save=args["save"], save_txt=args["save_txt"], options=options,
        progress=args["progress"] is not False,
    )  # fmt: skip
    counts = {"images": len(images), "frames": 0}
    counts["masks"] = sum(len(im["objects"]) for im in images)
    return _finish_predict(args, everything, run_dir, images, skipped, counts)


def embed(args: dict[str, Any]) -> int:
    """``samkit embed``: precompute embeddings into a store; exit 1 when some images failed."""
    from samkit.annotate.cli import engine_args
    from samkit.embed import embed as run_embed

    summary = run_embed(
        args["source"], args["model"], args["store"], device=args["device"],
        dtype=args["dtype"], recursive=args["recursive"], progress=args["progress"],
        **engine_args(args),
    )  # fmt: skip
    print(f"samkit embed: {summary}")
    return 1 if summary.errors else 0


def info(args: dict[str, Any]) -> int:
    """``samkit info``: the model summary as a table (or JSON)."""
    from samkit.model import SAM

    model = SAM(args["model"], device=args["device"])
    summary = model.info(verbose=not args["json"])
    if args["json"]:
        print(json.dumps(summary.as_dict(), indent=2))
    return 0


def models(args: dict[str, Any]) -> int:
    """``samkit models``: variants, files, sizes, parameters, licences and whether they are
    cached (parameters counted on networks built without memory, on torch's meta device)."""
    from samkit.registry import VARIANTS
    from samkit.weights import cache_dir

    root = cache_dir()
    rows = [("name", "aliases", "file", "size", "params", "licence", "cached", "description")]
    for v in VARIANTS.values():
        size = f"{v.weights.size / 2**20:.0f} MiB" if v.weights.size else "?"
        cached = "yes" if (root / v.weights.filename).is_file() else "no"
        params = f"{parameter_count(v.config) / 1e6:.1f} M"
        aliases = ",".join(v.aliases)
        rows.append(
            (v.name, aliases, v.weights.filename, size, params, v.licence, cached, v.description)
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    print(f"cache: {root}")
    return 0


def sample(args: dict[str, Any]) -> int:
    """``samkit sample``: print the bundled sample image's path (and nothing else, so that
    ``source="$(samkit sample)"`` works in any POSIX shell)."""
    from samkit.assets import SAMPLE

    print(SAMPLE)
    return 0


def parameter_count(config: Any) -> int:
    """Parameters of the network ``config`` describes (built on the meta device: no memory,
    no weights, licence notices silenced)."""
    import warnings

    import torch

    from samkit.build import build_from_config

    with warnings.catch_warnings(), torch.device("meta"):
        warnings.simplefilter("ignore")
        network = build_from_config(config)
    return sum(p.numel() for p in network.parameters())


def download(args: dict[str, Any]) -> int:
    """``samkit download NAME``: fetch a variant's weights into the cache (verified)."""
    from samkit.registry import get_variant
    from samkit.weights import resolve_checkpoint

    try:
        get_variant(args["name"])
    except KeyError:
        from samkit.registry import VARIANTS

        raise SamkitError(
            f"unknown model {args['name']!r}; known: {', '.join(VARIANTS)} (see samkit models)"
        ) from None
    path = resolve_checkpoint(args["name"], download=True, progress=True)
    print(path)
    return 0


def benchmark(args: dict[str, Any]) -> int:
    """``samkit benchmark``: runs ``benchmarks/bench_engine.py`` of the source checkout this
    samkit is imported from (the benchmark harness is not part of the installed package)."""
    import subprocess
    import sys

    import samkit

    script = Path(samkit.__file__).resolve().parents[2] / "benchmarks" / "bench_engine.py"
    if not script.is_file():
        raise SamkitError(
            "samkit benchmark runs benchmarks/bench_engine.py from a source checkout, and this "
            "samkit is an installed package: clone the repository and run "
            "`python benchmarks/bench_engine.py --help`"
        )
    argv = [sys.executable, str(script), "--models", str(args.get("models") or "mobile_sam,sam_b")]
    for key in ("repeats", "threads", "json"):
        if args.get(key) is not None:
            argv += [f"--{key}", str(args[key])]
    for key in ("bf16", "reference", "ultralytics", "memory"):
        if args.get(key) is False:
            argv.append(f"--no-{key}")
    return subprocess.call(argv)
