"""The benchmark harness (no timing assertions: benchmarks are not tests)."""

from __future__ import annotations

import numpy as np

from samkit.bench_engine import mean_iou, scene
from samkit.benchmark import Timing, interleave, markdown_table, ratio_line
from samkit.cli import MODES


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
    assert mode.handler == "samkit.benchmark:cli" and "models" in mode.keys


def test_in_child_returns_the_result_or_none() -> None:
    """Engines that could disturb the others (Ultralytics) are timed through in_child."""
    import os

    from samkit.benchmark import in_child

    pid = in_child(os.getpid)
    assert isinstance(pid, int) and pid != os.getpid()
    assert in_child(os.path.join, "a", "b") == os.path.join("a", "b")
    assert in_child(os.stat, "/nonexistent/samkit") is None  # the child failed
