"""The benchmark's outputs: ``bench.json`` (everything), ``bench.md`` (the tables), the three Pareto plots.

The JSON records the run itself (versions, machine, settings, command, where the time went) and one entry
per model whose measured numbers are ``measured(...)`` records and whose published numbers are
``reported(...)`` records (``zoo.benchmark.measure``). The Markdown keeps the two apart as well: every
quality column says "measured" (with the data it was measured on) or "reported" (with the source).
"""
from __future__ import annotations

import datetime as _dt
import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

from zoo.benchmark.markdown import render_markdown
from zoo.benchmark.measure import StageTimer, cpu_seconds
from zoo.benchmark.settings import BenchSettings
from zoo.core.fileio import write_json_atomic, write_text_atomic
from zoo.core.version import __version__
from zoo.tasks import DETECTION, LANGUAGE_MODELING

SCHEMA = "effzoo-bench/1"
FILES = {"json": "bench.json", "markdown": "bench.md", "pareto_detectors": "pareto_detectors.png",
         "pareto_pi": "pareto_pi.png", "pareto_latency": "pareto_latency.png"}


def run_provenance() -> dict[str, Any]:
    """The code, libraries and machine of a run, taken when it starts.

    Why at the start: the load average belongs to the start (the end's is added by ``write_outputs``), and the
    code and versions are those the run used, not what a long run's end finds installed.
    """
    return {"created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), "git_commit": _git_commit(),
            "versions": versions(), "machine": machine()}


def build_report(settings: BenchSettings, entries: list[dict[str, Any]], timer: StageTimer, *,
                 command: Any = None, references: list[dict[str, Any]] | None = None,
                 notes: list[str] | None = None, provenance: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``bench.json`` object (timing is completed by ``write_outputs``); ``references`` are the YOLO
    reference detectors' deployment latencies, ``notes`` run-level notes, ``provenance`` what
    :func:`run_provenance` took when the run started (default: now)."""
    prov = provenance or run_provenance()
    return {
        "schema": SCHEMA,
        "created": prov["created"],
        "command": list(command) if command else None,
        "effzoo_version": __version__,
        "git_commit": prov["git_commit"],
        "versions": prov["versions"],
        "machine": prov["machine"],
        "settings": settings.to_dict(),
        "selection": selection(settings, entries),
        "models": entries,
        "deployment_references": list(references or []),
        "notes": list(notes or []),
        "timing": {"stages": [], "total_s": None},
    }


def selection(settings: BenchSettings, entries: list[dict[str, Any]]) -> dict[str, Any]:
    """Which models ran, and which of them the benchmark trained (and on what budget)."""
    det = [e["name"] for e in entries if e["task"] == DETECTION]
    lm = [e["name"] for e in entries if e["task"] == LANGUAGE_MODELING]
    trained = [e["name"] for e in entries if e.get("training")]
    return {"pattern": settings.pattern, "models": [e["name"] for e in entries], "detectors": det,
            "transformers": lm, "trained_by_bench": trained}


def write_outputs(report: dict[str, Any], out: Path, timer: StageTimer, *, start: float, cpu_start: float
                  ) -> tuple[dict[str, Path], str]:
    """Draw the plots, then write the Markdown and the JSON (each atomically); returns (paths, markdown).

    ``start`` / ``cpu_start`` (``time.perf_counter()`` / ``cpu_seconds()`` when the run began) give the
    totals; the plots are timed as the "report" stage.
    """
    # deferred: matplotlib is slow to import
    from zoo.benchmark.plots import plot_pareto_detectors, plot_pareto_latency, plot_pareto_pi

    t0, c0 = time.perf_counter(), cpu_seconds()
    out.mkdir(parents=True, exist_ok=True)
    files = {key: out / name for key, name in FILES.items()}
    plot_pareto_detectors(report, files["pareto_detectors"])
    plot_pareto_pi(report, files["pareto_pi"])
    plot_pareto_latency(report, files["pareto_latency"])
    timer.add("report", time.perf_counter() - t0, 0, cpu_seconds() - c0)
    report["timing"] = timing(timer, time.perf_counter() - start, cpu_seconds() - cpu_start)
    if hasattr(os, "getloadavg"):
        report["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    markdown = render_markdown(report)
    write_text_atomic(files["markdown"], markdown)
    write_json_atomic(files["json"], report)
    return files, markdown


def timing(timer: StageTimer, total_s: float, total_cpu_s: float = 0.0) -> dict[str, Any]:
    """Per-stage wall and CPU seconds; the report stage itself is added once the files are written."""
    stages = [{"stage": name, "seconds": round(sec, 2), "cpu_seconds": round(timer.cpu.get(name, 0.0), 2),
               "items": timer.items.get(name, 0), "share": round(sec / total_s, 4) if total_s > 0 else 0.0}
              for name, sec in timer.stages.items()]
    return {"stages": stages, "total_s": round(total_s, 2), "total_cpu_s": round(total_cpu_s, 2)}


def versions() -> dict[str, str | None]:
    """Versions of the interpreter and of every library a number depends on."""
    from importlib import metadata

    import torch

    out: dict[str, str | None] = {"python": platform.python_version()}
    for dist in ("torch", "torchvision", "onnx", "onnxruntime", "onnxslim", "numpy", "fvcore", "pycocotools",
                 "faster-coco-eval", "tokenizers"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    out["torch"] = torch.__version__  # with its local build tag (+cpu, +cu130): the build matters for latency
    return out


def machine() -> dict[str, Any]:
    """CPU model, core counts, threads and load: the context every latency number needs."""
    import torch

    info: dict[str, Any] = {"platform": platform.platform(), "machine": platform.machine(), "cpu": _cpu_model(),
                            "cpu_flags": cpu_flags(), "cpu_count": os.cpu_count(),
                            "torch_threads": torch.get_num_threads()}
    if hasattr(os, "sched_getaffinity"):
        info["cpus_available"] = len(os.sched_getaffinity(0))
    if hasattr(os, "getloadavg"):
        info["load_average_at_start"] = [round(x, 2) for x in os.getloadavg()]
    return info


# The flags int8 / bf16 speed depends on (VNNI: int8 dot products; AMX: int8 / bf16 tile matmuls).
SPEED_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8")


def cpu_flags() -> dict[str, bool]:
    """Which of ``SPEED_FLAGS`` this CPU has (from /proc/cpuinfo; empty where it cannot be read)."""
    try:
        line = next(x for x in Path("/proc/cpuinfo").read_text().splitlines() if x.startswith("flags"))
    except (OSError, StopIteration):
        return {}
    flags = set(line.split(":", 1)[1].split())
    return {f: f in flags for f in SPEED_FLAGS}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _git_commit() -> str | None:
    repo = Path(__file__).resolve().parents[2]
    try:
        res = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return res.stdout.strip() or None
