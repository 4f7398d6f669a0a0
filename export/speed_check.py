"""Does the int8 file pay on this CPU? Its latency against the float32 graph it came from, side by side.

Why: whether an int8 file is faster than float depends on the CPU and the runtime's kernels as much as on
the file (README "(issue 14)": on an AMX Xeon the ``edge`` file of LeYOLO-Nano is 1.1-1.7x *slower* than
float32, on an AMD EPYC 0.92x). A user who picks ``edge`` to go faster must not find out in production,
so the exporters time both graphs (onnxruntime for ``edge``, OpenVINO for ``--int8`` IRs) on the machine
they run on (``zoo.export.latency``
protocol, a few interleaved blocks: seconds, not a benchmark) and says which is faster.
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Callable

import onnx
import torch
from zoo.export.latency import default_threads, interleaved_latency, openvino_runner, ort_runner

BLOCKS, CALLS = 3, 2


def measure_speed(float_run: Callable[[], Any], int8_run: Callable[[], Any], *, runtime: str, threads: int,
                  batch: int) -> dict[str, Any]:
    """``{"float32_ms", "int8_ms", "ratio", "threads", "method"}`` of two zero-argument inference calls."""
    stats = interleaved_latency({"float32": float_run, "int8": int8_run}, blocks=BLOCKS, calls_per_block=CALLS,
                                warmup=2)
    f, q = stats["float32"].median_ms, stats["int8"].median_ms
    return {"float32_ms": round(f, 3), "int8_ms": round(q, 3), "ratio": round(q / f, 3), "threads": threads,
            "method": f"{runtime}, {threads} threads, batch {batch}, median of {BLOCKS} interleaved blocks of {CALLS} "
                      "calls"}


def ort_int8_speed(float_proto: onnx.ModelProto, int8_proto: onnx.ModelProto, example: torch.Tensor, *,
                   threads: int | None = None) -> dict[str, Any]:
    """The ``edge`` graph against the float32 graph it was quantized from, in onnxruntime's CPU provider."""
    threads = threads or default_threads()
    with tempfile.TemporaryDirectory(prefix="effzoo-speed-") as tmp:
        paths = {}
        for key, proto in (("float32", float_proto), ("int8", int8_proto)):
            paths[key] = Path(tmp) / f"{key}.onnx"
            onnx.save(proto, str(paths[key]))
        float_run, int8_run = (ort_runner(paths[k], example, threads) for k in ("float32", "int8"))
        return measure_speed(float_run, int8_run, runtime="onnxruntime CPU", threads=threads,
                             batch=int(example.shape[0]))


def openvino_int8_speed(float_xml: Path, int8_xml: Path, example: torch.Tensor, *,
                        threads: int | None = None) -> dict[str, Any]:
    """An NNCF int8 IR against the float32 IR it was quantized from (OpenVINO CPU, float32 precision)."""
    threads = threads or default_threads()
    return measure_speed(openvino_runner(float_xml, example, threads), openvino_runner(int8_xml, example, threads),
                         runtime="OpenVINO CPU (float IR at f32 precision)", threads=threads,
                         batch=int(example.shape[0]))


def speed_note(speed: dict[str, Any]) -> str:
    verdict = ("faster than float32 here" if speed["ratio"] < 1 else
               "slower than float32 on this CPU: for speed here use the float32 file (README 'Deployment')")
    return (f"speed: int8 {speed['int8_ms']:.1f} ms vs float32 {speed['float32_ms']:.1f} ms = {speed['ratio']:.2f}x "
            f"({speed['method']}): {verdict}")
