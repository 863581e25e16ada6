"""Shared harness and inputs of the scripts in benchmarks/ (not part of the samkit package).

    from common import interleave, peak_memory, ratio_line, machine_info

- ``interleave({"ours": f, "reference": g}, repeats=5, warmup=1)`` -> {name: Timing}; runs are
  round-robin so that load drift on a shared machine hits every implementation alike;
  ``Timing.median`` / ``.best`` / ``.times``.
- ``peak_memory(setup, *args)`` -> (process peak MiB, MiB added by the task) in a fresh
  spawned process; ``setup`` is a module-level function returning the call to measure.
  ``in_child(fn, *args)`` runs ``fn`` in a fresh process and returns its result (None if it
  failed).
- ``ratio_line("encoder", ours_s, ref_s, target=0.6)`` -> "...: 0.42x the reference (target
  <= 0.60x) PASS".
- ``machine_info()`` -> date, CPU, cores, torch version, threads, load average.
- Inputs: ``scene()`` a synthetic 1280x720 RGB image, ``boxes_100()``, ``build_models(name)``
  samkit's network with the seeded weights of the parity tests (``tests/reference.py``'s
  ``randomize``: the one place that defines them), ``seeded_checkpoint(path, name)`` those
  weights saved as an official checkpoint, ``mean_iou``. Importing this module puts tests/ on
  ``sys.path``, so scripts import the tests' helpers (``reference``, ``shapes_data``) after it.
"""

from __future__ import annotations

import contextlib
import datetime
import multiprocessing as mp
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

# The seeded weights are the tests' (tests/reference.py), defined once for both.
TESTS = Path(__file__).resolve().parents[1] / "tests"
if str(TESTS) not in sys.path:
    sys.path.append(str(TESTS))

__all__ = [
    "Timing",
    "boxes_100",
    "build_models",
    "in_child",
    "interleave",
    "machine_info",
    "markdown_table",
    "mean_iou",
    "peak_memory",
    "ratio_line",
    "scene",
    "seeded_checkpoint",
    "time_call",
]


@dataclass
class Timing:
    """Wall times (seconds) of repeated runs of one implementation."""

    name: str
    times: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.times) if self.times else float("nan")

    @property
    def best(self) -> float:
        return min(self.times) if self.times else float("nan")

    def __str__(self) -> str:
        if not self.times:
            return f"{self.name}: not run"
        return (
            f"{self.name}: median {fmt_seconds(self.median)}, best {fmt_seconds(self.best)} "
            f"({len(self.times)} runs)"
        )


def fmt_seconds(seconds: float) -> str:
    """1.234 s / 56.7 ms / 890 us."""
    if seconds != seconds:  # NaN
        return "-"
    if seconds >= 1.0:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds * 1e6:.0f} us"


def time_call(fn: Callable[[], Any], repeats: int = 5, warmup: int = 1) -> Timing:
    """Median-ready wall times of ``fn()``."""
    return interleave({"run": fn}, repeats, warmup)["run"]


def interleave(
    fns: dict[str, Callable[[], Any]], repeats: int = 5, warmup: int = 1
) -> dict[str, Timing]:
    """Time every function ``repeats`` times, round-robin, after ``warmup`` untimed rounds."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    out = {name: Timing(name) for name in fns}
    for i in range(warmup + repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            elapsed = time.perf_counter() - start
            if i >= warmup:
                out[name].times.append(elapsed)
    return out


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:  # not Linux: fall back to the high-water mark
        return max_rss_bytes()


def max_rss_bytes() -> int:
    """This process's peak resident size. Linux: VmHWM (ru_maxrss would carry the parent's
    peak across fork + exec into a spawned child)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    scale = 1 if platform.system() == "Darwin" else 1024  # bytes on macOS, KiB elsewhere
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def _memory_child(setup: Callable[..., Callable[[], Any]], *args: Any) -> tuple[int, int]:
    run = setup(*args)
    base = _rss_bytes()
    run()
    peak = max_rss_bytes()
    return peak, max(0, peak - base)


def _child(fn: Callable[..., Any], args: tuple[Any, ...], queue: Any) -> None:
    queue.put(fn(*args))


def in_child(fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)`` in a fresh spawned process (``fn`` module-level, result picklable); None
    when the child fails. Spawned, because forking after OpenMP threads have run can hang;
    fresh, so that what one engine loads or leaves running cannot slow another's timings."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(fn, args, queue))
    proc.start()
    result = None
    while result is None and (proc.is_alive() or not queue.empty()):
        try:
            result = queue.get(timeout=1.0)
        except Exception:  # queue.Empty: the child is still working (or has died)
            continue
    proc.join()
    return result


def peak_memory(setup: Callable[..., Callable[[], Any]], *args: Any) -> tuple[float, float] | None:
    """Peak resident memory (MiB) of a fresh process that runs ``setup(*args)()``.

    ``setup`` (a module-level function, so it can be sent to a spawned child) builds what the
    task needs and returns the call to measure. Returns (peak of the whole process, increase
    over the resident size just before the call), or None when the child fails.
    """
    result = in_child(_memory_child, setup, *args)
    if result is None:
        return None
    peak, delta = result
    return peak / 2**20, delta / 2**20


def ratio_line(
    what: str,
    ours: float,
    reference: float,
    target: float | None = None,
    against: str = "the reference",
) -> str:
    """``what: 0.42x the reference (target <= 0.60x) PASS``; times in seconds, lower is better."""
    ratio = ours / reference if reference > 0 else float("nan")
    text = f"{what}: {fmt_seconds(ours)} vs {fmt_seconds(reference)} = {ratio:.2f}x {against}"
    if target is not None:
        verdict = "PASS" if ratio <= target else "MISS"
        text += f" (target <= {target:.2f}x) {verdict}"
    return text


def machine_info() -> dict[str, Any]:
    """Date, CPU, core count, torch version and threads, for the record."""
    info: dict[str, Any] = {
        "date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu": platform.processor() or "",
        "cores": os.cpu_count(),
    }
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        import torch

        info["torch"] = torch.__version__
        info["threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name()
    except ImportError:  # pragma: no cover - the harness itself needs no torch
        pass
    with contextlib.suppress(OSError):
        info["load"] = os.getloadavg()[0]
    return info


def markdown_table(headers: list[str], rows: list[list[Any]]) -> str:
    """A GitHub-markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def scene(height: int = 720, width: int = 1280, seed: int = 0) -> np.ndarray:
    """A synthetic (H, W, 3) uint8 RGB image with smooth gradients and discs."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    img = np.stack(
        [
            127 + 100 * np.sin(xx / 37),
            127 + 100 * np.cos(yy / 23),
            127 + 80 * np.sin((xx + yy) / 51),
        ],
        axis=-1,
    )
    for _ in range(8):
        cy, cx, r = rng.uniform(0, height), rng.uniform(0, width), rng.uniform(0.05, 0.25) * height
        img[(yy - cy) ** 2 + (xx - cx) ** 2 < r**2] = rng.uniform(0, 255, size=3)
    return np.clip(img + rng.normal(0, 4, img.shape), 0, 255).astype(np.uint8)


def boxes_100(h: int, w: int, seed: int = 0) -> np.ndarray:
    """100 seeded boxes (100, 4) XYXY inside an (h, w) image."""
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 0.7, (100, 2)) * [w, h]
    wh = rng.uniform(0.1, 0.3, (100, 2)) * [w, h]
    return np.concatenate([xy, xy + wh], axis=1)


def mean_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Mean IoU over the leading axes of two boolean mask stacks (..., H, W)."""
    a2 = a.reshape(-1, a.shape[-2] * a.shape[-1])
    b2 = b.reshape(-1, b.shape[-2] * b.shape[-1])
    inter = (a2 & b2).sum(1)
    union = (a2 | b2).sum(1)
    return float(np.where(union > 0, inter / np.maximum(union, 1), 1.0).mean())


def build_models(name: str, seed: int = 0) -> tuple[Any, dict[str, Any]]:
    """samkit's network for variant ``name`` with seeded weights, and those weights."""
    from reference import randomize
    from samkit.build import build_from_config
    from samkit.registry import VARIANTS

    model = build_from_config(VARIANTS[name].config)
    return model, randomize(model, seed)


def seeded_checkpoint(path: Path, name: str = "mobile_sam", seed: int = 0) -> Path:
    """The seeded weights of :func:`build_models` saved at ``path`` in the official format (as
    fast to run as the real weights, nothing to download)."""
    import torch

    _, state = build_models(name, seed)
    torch.save(state, path)
    return path
