"""The benchmark harness in benchmarks/ (no timing assertions: benchmarks are not tests)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

from samkit.cli import MODES

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

from common import Timing, in_child, interleave, markdown_table, mean_iou, ratio_line, scene  # noqa: E402


def test_interleave_runs_round_robin_after_warmup() -> None:
    calls: list[str] = []
    timings = interleave({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, 3, 1)
    assert calls == ["a", "b"] * 4  # one warm-up round, then three timed rounds
    assert [len(t.times) for t in timings.values()] == [3, 3]
    assert Timing("x", [3.0, 1.0, 2.0]).median == 2.0 and Timing("x", [3.0, 1.0]).best == 1.0


def test_ratio_line_verdicts() -> None:
    assert ratio_line("enc", 0.5, 1.0, 0.6).endswith("PASS")
    assert ratio_line("enc", 0.7, 1.0, 0.6).endswith("MISS")
    assert "0.70x Ultralytics" in ratio_line("enc", 0.7, 1.0, against="Ultralytics")


def test_mean_iou_and_table() -> None:
    a = np.zeros((2, 4, 4), dtype=bool)
    b = a.copy()
    a[0, :2] = b[0, :1] = True  # IoU 0.5; second pair both empty -> 1.0
    assert mean_iou(a, b) == 0.75
    assert markdown_table(["m", "t"], [["x", 1]]).splitlines()[2] == "| x | 1 |"
    image = scene(72, 128)
    assert image.shape == (72, 128, 3) and image.dtype == np.uint8


def test_cli_has_benchmark_mode() -> None:
    mode = MODES["benchmark"]
    assert mode.handler == "samkit.cli_modes:benchmark" and "models" in mode.keys


def test_benchmarks_are_outside_the_package_without_cycles() -> None:
    import samkit

    package = Path(samkit.__file__).parent
    assert not list(package.glob("bench*.py"))
    code = "import engine_suite, bench_ultralytics, common; print('ok')"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=BENCHMARKS, capture_output=True, text=True, check=False
    )
    assert out.stdout.strip() == "ok", out.stderr[-2000:]


def test_in_child_returns_the_result_or_none() -> None:
    """Engines that could disturb the others (Ultralytics) are timed through in_child."""
    import os

    pid = in_child(os.getpid)
    assert isinstance(pid, int) and pid != os.getpid()
    assert in_child(os.path.join, "a", "b") == os.path.join("a", "b")
    assert in_child(os.stat, "/nonexistent/samkit") is None  # the child failed


def test_benchmark_mode_outside_a_checkout_says_why(monkeypatch, tmp_path) -> None:
    """An installed samkit has no benchmarks/ folder: the mode explains instead of failing."""
    import pytest

    import samkit
    from samkit.cli_modes import benchmark
    from samkit.errors import SamkitError

    fake = tmp_path / "site-packages" / "samkit" / "__init__.py"
    monkeypatch.setattr(samkit, "__file__", str(fake))
    with pytest.raises(SamkitError, match="source checkout"):
        benchmark({"models": "mobile_sam"})
