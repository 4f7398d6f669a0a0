"""Measured values carry their provenance: how each number was obtained and how long that took.

Every number the benchmark measures is stored as a ``measured(value, unit, method, seconds)`` record, so a
reader of ``bench.json`` (and the test suite) can tell a measurement from a published figure, which is
stored as ``reported(...)`` with its source, and never in the same field.
"""
from __future__ import annotations

import math
import os
import statistics
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator


def measured(value: float | int, unit: str, method: str, seconds: float, **detail: Any) -> dict[str, Any]:
    """A measured number: ``{"value", "unit", "method", "seconds", ...detail}``.

    Raises:
        ValueError: ``value`` is not a finite number (callers record a non-result as ``None`` plus a note).
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"measured value must be a finite number, got {value!r} ({method}).")
    return {"value": value, "unit": unit, "method": method, "seconds": round(float(seconds), 4), **detail}


def reported(metric: str, value: float, source: str, **detail: Any) -> dict[str, Any]:
    """A published number, labelled as such: ``{"metric", "value", "source", "kind": "reported", ...}``."""
    return {"kind": "reported", "metric": metric, "value": value, "source": source, **detail}


@contextmanager
def stopwatch() -> Iterator[Callable[[], float]]:
    """``with stopwatch() as elapsed: ...; elapsed()`` -> seconds since the block started (perf_counter)."""
    start = time.perf_counter()
    yield lambda: time.perf_counter() - start


def time_calls(fn: Callable[[], Any], *, repeats: int, warmup: int) -> list[float]:
    """Wall time in milliseconds of ``repeats`` calls of ``fn`` after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        runs.append((time.perf_counter() - start) * 1e3)
    return runs


def latency_record(runs_ms: list[float], method: str, seconds: float, **detail: Any) -> dict[str, Any]:
    """Median of repeated runs, with the spread (min, max, interquartile range) and the raw runs."""
    ordered = sorted(runs_ms)
    q = statistics.quantiles(ordered, n=4) if len(ordered) >= 2 else [ordered[0]] * 3
    return measured(round(statistics.median(ordered), 4), "ms", method, seconds, repeats=len(ordered),
                    min_ms=round(ordered[0], 4), max_ms=round(ordered[-1], 4), iqr_ms=round(q[2] - q[0], 4),
                    runs_ms=[round(r, 4) for r in runs_ms], **detail)


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (user + system).

    Why: on a machine shared with other jobs wall time measures the neighbours too; CPU time is what the
    work itself costs, so both go into "where the time went".
    """
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


@dataclass
class StageTimer:
    """Wall and CPU time per stage, in the order stages ran ("where the time went")."""

    stages: dict[str, float] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)
    items: dict[str, int] = field(default_factory=dict)

    def add(self, stage: str, seconds: float, items: int = 0, cpu: float = 0.0) -> None:
        self.stages[stage] = self.stages.get(stage, 0.0) + seconds
        self.cpu[stage] = self.cpu.get(stage, 0.0) + cpu
        self.items[stage] = self.items.get(stage, 0) + items
