"""Batch-1 CPU latency of one model: eager PyTorch and onnxruntime, median of repeated runs.

Both runtimes run the same inference graph: the fused LeYOLO copy (``model.fuse()``) or the folded PI-GPT
(``model.fold()``), which is also what ``zoo.export.export_onnx`` traces, so the two numbers differ only by the
runtime. Eager runs under ``torch.inference_mode``; onnxruntime uses the CPU provider with as many intra-op
threads as torch uses, and its file must pass the exporter's parity check (1e-4) before it is timed.
Weights are freshly initialised: neither network has data-dependent control flow, so latency does not
depend on them.
"""
from __future__ import annotations

import copy
import logging
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

import zoo.export
from zoo.benchmark.cost import example_input
from zoo.benchmark.measure import latency_record, measured, stopwatch, time_calls
from zoo.benchmark.settings import BenchSettings
from zoo.core.factory import create_model
from zoo.core.registry import ModelCard
from zoo.tasks import get_task

logger = logging.getLogger(__name__)


def inference_copy(model: nn.Module) -> nn.Module:
    """The graph a deployment runs: fused detector / folded transformer, eval mode."""
    if hasattr(model, "fold"):
        return model.fold()
    if hasattr(model, "fuse"):
        return copy.deepcopy(model).eval().fuse().eval()
    return copy.deepcopy(model).eval()


def model_latency(card: ModelCard, settings: BenchSettings, size: int | None = None) -> dict[str, Any]:
    """Eager and onnxruntime batch-1 latency at ``size`` (default: the card's input size), with notes on what
    was skipped."""
    size = size or card.input_size
    threads = torch.get_num_threads()
    with stopwatch() as elapsed:
        model = create_model(card.name).eval()
        n_params = sum(p.numel() for p in model.parameters())
        infer = inference_copy(model)
        del model
    build_s = elapsed()
    large = bool(settings.ort_max_params) and n_params > settings.ort_max_params
    repeats, warmup = (settings.latency_repeats_large, min(settings.latency_warmup, 1)) if large else \
        (settings.latency_repeats, settings.latency_warmup)
    x = example_input(card, size)
    out: dict[str, Any] = {"input_size": size, "batch": 1, "threads": threads, "build_seconds": round(build_s, 4),
                           "notes": []}
    with stopwatch() as elapsed, torch.inference_mode():
        runs = time_calls(lambda: infer(x), repeats=repeats, warmup=warmup)
    graph = "folded (model.fold())" if hasattr(infer, "is_fused") else "fused (model.fuse())"
    out["eager_ms"] = latency_record(
        runs, f"torch eager, {graph}, inference_mode, batch 1, {threads} threads, median of {repeats} after "
              f"{warmup} warm-up", elapsed(), warmup=warmup)
    if large:
        out["onnxruntime_ms"] = None
        out["notes"].append(f"onnxruntime not measured: {n_params / 1e6:.0f}M parameters > ort_max_params="
                            f"{settings.ort_max_params / 1e6:.0f}M (a {4 * n_params / 1e9:.1f} GB file per model; "
                            "raise ort_max_params to include it)")
    else:
        out["onnxruntime_ms"], note = _ort_latency(infer, card, size, x, repeats, warmup, threads)
        if note:
            out["notes"].append(note)
    return out


def _ort_latency(model: nn.Module, card: ModelCard, size: int, x: torch.Tensor, repeats: int, warmup: int,
                 threads: int) -> tuple[dict[str, Any] | None, str]:
    """Export to a temporary ONNX file (cpu target, parity-checked) and time ``InferenceSession.run``."""
    size_kw = {get_task(card.task).size_arg: size}
    with tempfile.TemporaryDirectory(prefix="effzoo-bench-") as tmp:
        path = Path(tmp) / f"{card.name}.onnx"
        result = zoo.export.export_onnx(model, "cpu", batch=1, out=path, **size_kw)
        session = zoo.export.OnnxModel(path, providers=["CPUExecutionProvider"], threads=threads)
        feed = x.numpy()
        with stopwatch() as elapsed:
            runs = time_calls(lambda: session.run(feed), repeats=repeats, warmup=warmup)
        p = result.parity.to_dict()
        parity = measured(p["value"], p["metric"], f"zoo.export.export_onnx parity check against PyTorch on fixed inputs "
                          f"({p['provider']}, tolerance {p['tolerance']:g}); seconds = the whole export",
                          result.seconds, passed=p["passed"], max_abs_diff=p["max_abs_diff"])
        record = latency_record(
            runs, f"onnxruntime {session.providers[0]}, zoo.export.export_onnx(target='cpu', batch=1), "
                  f"{threads} intra-op threads, median of {repeats} after {warmup} warm-up", elapsed(),
            warmup=warmup, export_seconds=round(result.seconds, 4), file_mb=round(result.size_mb, 3),
            parity=parity)
    return record, "; ".join(result.notes)
