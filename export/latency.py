"""Batch-1 latency of PyTorch models and ONNX files, measured fairly: interleaved, repeated blocks, median.

Why interleaved: on a shared or thermally throttling CPU the machine's speed drifts over a run; timing
model A for a minute and then model B would compare two different machines. Every block times each
candidate once (a few calls in a row), in an order that rotates from block to block, so drift hits all
candidates alike, and the median over blocks discards the blocks a background job spoiled.

Used by ``benchmarks/onnx_latency.py`` and available to other benchmarks (``zoo bench``)::

    from zoo.export.latency import interleaved_latency, ort_runner, torch_runner
    stats = interleaved_latency({"torch": torch_runner(model, x), "ort": ort_runner("m.onnx", x)})
    stats["ort"].median_ms
"""
from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from zoo.runtime.openvino import OpenVinoModel


@dataclass(frozen=True)
class Latency:
    """Per-call latency of one candidate.

    Attributes:
        median_ms: median over blocks of the mean call time within a block.
        q1_ms / q3_ms: quartiles over blocks (the spread).
        blocks / calls_per_block: how much was measured.
    """

    name: str
    median_ms: float
    q1_ms: float
    q3_ms: float
    blocks: int
    calls_per_block: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def default_threads() -> int:
    """Intra-op threads = the cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS/Windows
        return os.cpu_count() or 1


def interleaved_latency(candidates: Mapping[str, Callable[[], Any]], *, blocks: int = 15, calls_per_block: int = 5,
                        warmup: int = 3) -> dict[str, Latency]:
    """Time each zero-argument callable; see the module docstring for the protocol.

    Args:
        candidates: name -> a callable running one batch-1 inference.
        blocks: timed blocks per candidate (the median is over these).
        calls_per_block: consecutive calls per block (their mean is one sample).
        warmup: untimed calls per candidate first (allocations, lazy initialisation, caches).
    """
    if blocks < 1 or calls_per_block < 1:
        raise ValueError(f"blocks and calls_per_block must be >= 1 (got {blocks}, {calls_per_block}).")
    names = list(candidates)
    for name in names:
        for _ in range(warmup):
            candidates[name]()
    samples: dict[str, list[float]] = {n: [] for n in names}
    for b in range(blocks):
        order = names[b % len(names):] + names[:b % len(names)]
        for name in order:
            fn = candidates[name]
            start = time.perf_counter()
            for _ in range(calls_per_block):
                fn()
            samples[name].append((time.perf_counter() - start) * 1e3 / calls_per_block)
    out = {}
    for name, values in samples.items():
        # "inclusive": quartiles between the samples; the default "exclusive" extrapolates past them for few
        # blocks (2 blocks of 4.0 and 5.0 ms gave a negative q1)
        q = statistics.quantiles(values, n=4, method="inclusive") if len(values) > 1 else [values[0]] * 3
        out[name] = Latency(name, statistics.median(values), q[0], q[2], blocks, calls_per_block)
    return out


def torch_runner(model: torch.nn.Module, x: torch.Tensor) -> Callable[[], Any]:
    """One eager forward of ``model`` (eval, inference mode) on ``x``.

    PyTorch's thread count is process-wide, so it is the caller's (the benchmark script's) to set with
    ``torch.set_num_threads``; a library helper does not flip it behind the caller's back.
    """
    model.eval()

    def run() -> Any:
        with torch.inference_mode():
            return model(x)

    return run


def ort_session(path: str | os.PathLike[str], threads: int | None = None,
                providers: tuple[str, ...] = ("CPUExecutionProvider",)) -> Any:
    """An onnxruntime session with ``threads`` intra-op threads, full graph optimisation, sequential execution."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or default_threads()
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), sess_options=options, providers=list(providers))


def ort_runner(path: str | os.PathLike[str], x: np.ndarray | torch.Tensor, threads: int | None = None,
               providers: tuple[str, ...] = ("CPUExecutionProvider",)) -> Callable[[], Any]:
    """One onnxruntime run of the file at ``path`` on ``x`` (cast to the graph input's type)."""
    session = ort_session(path, threads, providers)
    inp = session.get_inputs()[0]
    arr = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    arr = np.ascontiguousarray(arr, dtype=np.float16 if inp.type == "tensor(float16)" else
                               (np.int64 if inp.type == "tensor(int64)" else np.float32))
    feed = {inp.name: arr}
    return lambda: session.run(None, feed)


def openvino_runner(path: str | os.PathLike[str], x: np.ndarray | torch.Tensor, threads: int | None = None,
                    inference_precision: str | None = "f32") -> Callable[[], Any]:
    """One OpenVINO CPU inference of the IR at ``path`` on ``x`` (latency hint, ``threads`` inference threads).

    ``inference_precision=None`` keeps the plugin's default (bfloat16 on CPUs with native bf16), see
    :mod:`zoo.runtime.openvino`.
    """
    model = OpenVinoModel(path, threads=threads or default_threads(), inference_precision=inference_precision)
    arr = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    feed = {model.input_name: np.ascontiguousarray(arr, dtype=model.input_dtype)}
    return lambda: model.session.run(None, feed)
