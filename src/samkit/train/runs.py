"""The run folder a training writes: ``args.yaml``, ``results.csv`` / ``results.json`` (one row
per epoch), ``results.png`` (curves), ``weights/last.pt`` / ``weights/best.pt`` (plain state
dicts in the official layout) and ``weights/last_state.pt`` (what ``resume`` needs)."""

from __future__ import annotations

import contextlib
import csv
import errno
import io
import json
import logging
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from samkit.errors import SamkitError
from samkit.io_utils import atomic_open, atomic_write_text

__all__ = [
    "find_resume",
    "read_args",
    "remove_partial",
    "save_torch",
    "write_args",
    "write_plots",
    "write_results",
]

logger = logging.getLogger("samkit")

STATE_FILE = "last_state.pt"


def save_torch(obj: Any, path: Path) -> Path:
    """``torch.save`` streamed to a temporary file beside ``path``, then an atomic rename. On a
    failure the temporary file is removed and ``path`` left as it was.

    Raises:
        SamkitError: naming ``path`` (and saying "disk full" when the disk is).
    """
    try:
        with atomic_open(path) as f:
            torch.save(obj, f)
    except (OSError, RuntimeError) as exc:
        raise SamkitError(_write_failure(path, exc)) from exc
    return path


def _write_failure(path: Path, exc: BaseException) -> str:
    """The message of a checkpoint write that failed: "disk full" when ENOSPC is the cause
    (torch wraps it in a RuntimeError from its zip writer) or the disk has no room left."""
    chain: list[BaseException] = []
    e: BaseException | None = exc
    while e is not None and len(chain) < 8:
        chain.append(e)
        e = e.__cause__ or e.__context__
    full = any(getattr(c, "errno", None) == errno.ENOSPC for c in chain) or any(
        "No space left" in str(c) for c in chain
    )
    if not full and isinstance(exc, RuntimeError):
        with contextlib.suppress(OSError):
            full = shutil.disk_usage(path.parent).free < 1 << 20
    if full:
        return (
            f"disk full while writing the checkpoint {path}: free space on "
            f"{path.parent} and resume the run (resume=true); the previous checkpoint is kept"
        )
    return f"cannot write the checkpoint {path}: {exc}"


def remove_partial(run_dir: Path) -> list[Path]:
    """Delete the temporary files an interrupted checkpoint write left in ``run_dir/weights``
    (``.<name>.*.tmp``); returns them."""
    weights = run_dir / "weights"
    stale = sorted(weights.glob(".*.tmp")) if weights.is_dir() else []
    for tmp in stale:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
            logger.info("removed %s, left by an interrupted checkpoint write", tmp)
    return stale


def write_args(run_dir: Path, args: Mapping[str, Any]) -> Path:
    """``args.yaml``: one ``key: value`` line per setting, values as JSON (a YAML subset), so
    any YAML reader (and :func:`read_args`) gets them back with their types."""
    lines = [f"{key}: {json.dumps(_plain(value))}" for key, value in args.items()]
    return atomic_write_text(run_dir / "args.yaml", "\n".join(lines) + "\n")


def read_args(run_dir: Path) -> dict[str, Any]:
    """The settings :func:`write_args` wrote."""
    out: dict[str, Any] = {}
    for line in (run_dir / "args.yaml").read_text(encoding="utf-8").splitlines():
        key, sep, value = line.partition(": ")
        if sep:
            out[key] = json.loads(value)
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    return str(value)


def write_results(run_dir: Path, rows: Sequence[Mapping[str, float]]) -> None:
    """``results.csv`` and ``results.json``: one row per finished epoch (rewritten atomically)."""
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _fmt(row.get(k)) for k in columns})
    atomic_write_text(run_dir / "results.csv", buf.getvalue())
    atomic_write_text(run_dir / "results.json", json.dumps(list(rows), indent=1) + "\n")


def _fmt(value: Any) -> Any:
    return f"{value:.6g}" if isinstance(value, float) else value


def write_plots(run_dir: Path, rows: Sequence[Mapping[str, float]]) -> Path | None:
    """``results.png``: one panel per logged quantity against the epoch (matplotlib, Agg).
    Returns None (and logs why) when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        logger.warning("plots skipped: matplotlib is not installed (pip install matplotlib)")
        return None
    keys = [k for k in rows[0] if k != "epoch" and isinstance(rows[0][k], (int, float))]
    if not keys:
        return None
    cols = min(4, len(keys))
    nrows = (len(keys) + cols - 1) // cols
    fig, axes = plt.subplots(nrows, cols, figsize=(3.6 * cols, 2.8 * nrows), squeeze=False)
    epochs = [int(r["epoch"]) for r in rows]
    for ax, key in zip(axes.flat, keys, strict=False):
        ax.plot(epochs, [r.get(key, float("nan")) for r in rows], marker="o", markersize=3)
        ax.set_title(key, fontsize=9)
        ax.set_xlabel("epoch", fontsize=8)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(keys) :]:
        ax.axis("off")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    from samkit.io_utils import atomic_write_bytes

    return atomic_write_bytes(run_dir / "results.png", buf.getvalue())


def find_resume(resume: bool | str | os.PathLike[str], project: str, name: str) -> Path:
    """The run folder to resume: a folder, a file inside its ``weights/``, or (``True``) the
    most recently written ``project/name*`` run that has a training state."""
    if resume is True:
        base = Path(project)
        candidates = [p for p in base.glob(f"{name}*") if (p / "weights" / STATE_FILE).is_file()]
        if not candidates:
            raise SamkitError(
                f"resume=True: no run under {base}/{name}* has weights/{STATE_FILE} to resume"
            )
        return max(candidates, key=lambda p: (p / "weights" / STATE_FILE).stat().st_mtime)
    if not isinstance(resume, (str, os.PathLike)):
        raise SamkitError(f"resume must be True or a run folder, got {resume!r}")
    path = Path(resume)
    run = path.parent.parent if path.is_file() else path
    if not (run / "weights" / STATE_FILE).is_file():
        raise SamkitError(
            f"resume={os.fspath(resume)!r}: expected a run folder (or a file in its weights/) "
            f"holding weights/{STATE_FILE}"
        )
    return run
