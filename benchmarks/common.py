"""Shared timing harness for the scripts in benchmarks/ (a thin re-export of
:mod:`samkit.benchmark`, which ``samkit benchmark`` also uses).

    from common import interleave, peak_memory, ratio_line, machine_info

- ``interleave({"ours": f, "reference": g}, repeats=5, warmup=1)`` -> {name: Timing}; runs are
  round-robin so that load drift on a shared machine hits every implementation alike;
  ``Timing.median`` / ``.best`` / ``.times``.
- ``peak_memory(setup, *args)`` -> (process peak MiB, MiB added by the task) in a fresh
  spawned process; ``setup`` is a module-level function returning the call to measure.
- ``ratio_line("encoder", ours_s, ref_s, target=0.6)`` -> "...: 0.42x the reference (target
  <= 0.60x) PASS".
- ``machine_info()`` -> date, CPU, cores, torch version, threads, load average.
"""

from __future__ import annotations

from samkit.benchmark import (
    Timing,
    fmt_seconds,
    interleave,
    machine_info,
    markdown_table,
    peak_memory,
    ratio_line,
    time_call,
)

__all__ = [
    "Timing",
    "fmt_seconds",
    "interleave",
    "machine_info",
    "markdown_table",
    "peak_memory",
    "ratio_line",
    "time_call",
]
