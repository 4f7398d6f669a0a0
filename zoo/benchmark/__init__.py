"""The benchmark behind ``zoo bench`` / ``make bench``: every model's cost next to its accuracy.

``zoo.bench(...)`` (:func:`zoo.benchmark.run.bench`) measures parameters, GFLOPs, the nonlinearity census,
PI cost, CPU latency and quality, and writes ``bench.json``, ``bench.md`` and two Pareto plots. The package
is named ``benchmark`` (not ``bench``) so that importing it never shadows the ``zoo.bench`` function.
"""
from __future__ import annotations

from zoo.benchmark.run import BenchResult, bench
from zoo.benchmark.settings import BenchSettings

__all__ = ["BenchResult", "BenchSettings", "bench"]
