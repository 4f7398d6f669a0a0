"""``export_onnx``: any registry model -> an ONNX file for the cpu, gpu or edge target, parity-checked.

Pipeline (each step in its own module):

1. what to trace: the task slice's graph spec (``TaskSpec.graph_spec``: the inference copy, fixed check
   inputs, metadata; e.g. :mod:`zoo.tasks.detection.export_graph` with optional end-to-end NMS);
2. trace with the TorchScript exporter (:mod:`zoo.export.trace`, why not dynamo is explained there);
3. simplify with onnxslim when installed (:mod:`zoo.export.simplify`);
4. the target: ``cpu`` float32 as is; ``gpu`` float16 (:mod:`zoo.export.fp16`); ``edge`` int8 QDQ
   calibrated by the task slice (``TaskSpec.calibration_inputs``, :mod:`zoo.export.quantize`);
5. parity against the PyTorch model (:mod:`zoo.export.parity`; for edge the task's held-out metric,
   :mod:`zoo.export.edge_check`), in memory;
6. metadata (:mod:`zoo.export.metadata`) and an atomic write: a failing check raises ``ParityError`` and
   leaves nothing at the output path (an older file there is kept as it was).
"""
from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from torch import nn
from zoo.export import graph as graph_ops
from zoo.export.edge_check import edge_accuracy
from zoo.export.fp16 import to_float16
from zoo.export.metadata import build_metadata, write_metadata
from zoo.export.parity import CPU_FP16_FACTOR, NUMERIC_METRIC, TOLERANCES, ParityReport, numeric_parity
from zoo.export.simplify import MISSING_NOTE, onnxslim_available
from zoo.export.speed_check import ort_int8_speed, speed_note
from zoo.export.simplify import simplify as slim
from zoo.export.trace import DEFAULT_OPSET, EXPORTER, check_opset, trace_to_onnx

from zoo.core.errors import ExportError, OnnxModelError, ParityError
from zoo.core.factory import create_model
from zoo.core.fileio import atomic_path, check_output_path
from zoo.core.registry import get_card
from zoo.runtime.onnx import OnnxModel, available_providers
from zoo.tasks import TaskSpec, detection, get_task, language
from zoo.tasks.base.graph import GraphSpec
from zoo.tasks.detection.export_graph import NMSSettings

logger = logging.getLogger(__name__)

TARGETS = ("cpu", "gpu", "edge")
PRECISION = {"cpu": "fp32", "gpu": "fp16", "edge": "int8"}


@dataclass
class ExportResult:
    """What ``export_onnx`` wrote and measured.

    Attributes:
        path: the written file.
        model: registry name (or class name for unregistered models).
        task / target / precision: what was exported, for which runtime, in which number format.
        size_bytes: file size.
        opset: default-domain opset of the file.
        inputs / outputs: graph input shape (symbolic axes as names) and output names.
        parity: the parity report (also stored in the file's metadata).
        seconds: wall time of the whole export.
        notes: things the user should know (onnxslim missing, where parity ran, ...).
        speed: edge target with the check on: int8 vs float32 latency on this CPU (``zoo.export.speed_check``).
    """

    path: Path
    model: str
    task: str
    target: str
    precision: str
    size_bytes: int
    opset: int
    inputs: list[int | str]
    outputs: list[str]
    parity: ParityReport
    seconds: float
    notes: list[str] = field(default_factory=list)
    speed: dict[str, Any] | None = None

    @property
    def size_mb(self) -> float:
        return self.size_bytes / 1e6

    def to_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "model": self.model, "task": self.task, "target": self.target,
                "precision": self.precision, "size_bytes": self.size_bytes, "opset": self.opset,
                "inputs": self.inputs, "outputs": self.outputs, "parity": self.parity.to_dict(),
                "seconds": round(self.seconds, 3), "notes": list(self.notes), "speed": self.speed}


def export_onnx(
    model: nn.Module | str,
    target: str = "cpu",
    *,
    imgsz: int | tuple[int, int] | None = None,
    seq_len: int | None = None,
    batch: int | str = "dynamic",
    opset: int = DEFAULT_OPSET,
    nms: bool = False,
    conf: float = 0.25,
    iou: float = 0.7,
    max_det: int = 300,
    dynamic_hw: bool = False,
    io_fp16: bool = False,
    full_int8: bool = False,
    out: str | os.PathLike[str] | None = None,
    weights: str | os.PathLike[str] | None = None,
    calibration: Any = None,
    eval_data: Any = None,
    calibration_size: int = 32,
    eval_size: int = 64,
    check: bool = True,
    tolerance: float | None = None,
    simplify: bool | None = None,
    progress: bool = False,
) -> ExportResult:
    """Export ``model`` to ONNX for ``target`` and prove the file computes what the model computes.

    Args:
        model: a model (not modified) or a registry name (built with ``weights``).
        target: ``cpu`` (float32, onnxslim-simplified), ``gpu`` (float16 for the CUDA provider) or ``edge``
            (int8 static QDQ, per-channel weights, calibrated).
        imgsz: detector input side (or (h, w)); default the model's input size. Multiple of 32.
        seq_len: language-model sequence length T; default the model's context length.
        batch: ``"dynamic"`` (default) or a fixed batch size.
        opset: ONNX opset, 17 or newer.
        nms: detectors: end-to-end graph returning padded (boxes, scores, classes) after NMS with
            ``conf`` / ``iou`` / ``max_det`` (see :mod:`zoo.tasks.detection.nms_graph`).
        dynamic_hw: detectors: leave height and width free (any multiple of 32) instead of ``imgsz``.
        io_fp16: gpu: float16 graph inputs/outputs instead of float32 with casts.
        full_int8: edge: also quantize conv/matmul outputs (all-integer graph for NPU toolchains; less
            accurate, see :mod:`zoo.export.quantize`).
        out: output path; default ``runs/export/<model>-<target>.onnx``.
        weights: checkpoint for a model given by name.
        calibration: edge: calibration data (detectors: a dataset spec or images, default the synthetic
            set's train split; LMs: token chunks, default the byte-level stdlib corpus for 256-token
            vocabularies, else seeded random tokens). See the slices' ``export_data`` modules.
        eval_data: edge: labelled data for the accuracy check, disjoint from ``calibration`` (default the
            synthetic set's val split / the corpus's held-out split).
        calibration_size / eval_size: images or chunks used for calibration / for the accuracy check.
        check: run the parity check (default; a file that fails it is never written).
        tolerance: override the target's bound (cpu 1e-4, gpu 1e-2 normalised max abs diff; edge 0.05 AP
            drop for detectors, 0.10 relative perplexity increase for LMs).
        simplify: run onnxslim (default: when installed).
        progress: progress bars (stderr) for calibration and accuracy runs.

    Returns:
        An :class:`ExportResult`.

    Raises:
        ExportError: bad target/option, or a model the tracer cannot convert.
        ParityError: the file does not match the model within tolerance (nothing written).
    """
    start = time.perf_counter()
    if tolerance is not None and not (isinstance(tolerance, (int, float)) and 0 < tolerance < float("inf")):
        raise ExportError(f"tolerance must be a positive finite number (got {tolerance!r}).")
    if out is not None:
        check_output_path(out, what="output")  # before minutes of tracing and checking, not after
    model, name = _resolve_model(model, weights)
    if target not in TARGETS:
        raise ExportError(f"Unknown export target {target!r}; choose one of {', '.join(TARGETS)}.")
    batch = _check_batch(batch)
    check_opset(opset)
    if io_fp16 and target != "gpu":
        raise ExportError("io_fp16 applies to the gpu target only (cpu is float32, edge takes float32 inputs).")
    if full_int8 and target != "edge":
        raise ExportError("full_int8 applies to the edge target only.")
    task_spec = get_task(task_of(model))
    task = task_spec.name
    settings = NMSSettings(conf, iou, max_det) if nms else None
    spec = _graph_spec(model, task_spec, imgsz=imgsz, seq_len=seq_len, batch=batch, dynamic_hw=dynamic_hw,
                       nms=settings)
    proto, notes = _float_graph(spec, opset, simplify)
    tail = graph_ops.descendants(proto, spec.tail_inputs)
    head_out = graph_ops.nearest_producers(proto, spec.tail_inputs, "Conv") if target == "edge" else []
    graph_ops.drop_outputs(proto, spec.tail_inputs)
    keep_float = tail + ([] if full_int8 and graph_ops.has_op(proto, "Conv") else head_out)  # see zoo.export.quantize
    float_proto = onnx.ModelProto.FromString(proto.SerializeToString()) if target == "edge" and check else None
    proto = _apply_target(proto, spec, task_spec, target, keep_float, io_fp16=io_fp16, full_int8=full_int8,
                          calibration=calibration, calibration_size=calibration_size, progress=progress, notes=notes)

    if check:
        report = _check(proto, spec, target, task_spec, tolerance=tolerance, calibration=calibration, eval_data=eval_data,
                        calibration_size=calibration_size, eval_size=eval_size, batch=batch, progress=progress)
        _raise_if_failed(report, name, target)
    else:
        tol = tolerance if tolerance is not None else _default_tolerance(target, task_spec)
        report = ParityReport(target, _metric(target, task_spec), None, tol, None, "",
                              notes=["check disabled (--no-check)"])
    logger.info("%s %s: %s", name, target, report.summary())

    graph_ops.drop_outputs(proto, spec.check_only_outputs)
    speed = None
    if check:
        _verify_final(proto, spec, target)
    if float_proto is not None:
        graph_ops.drop_outputs(float_proto, spec.check_only_outputs)
        speed = ort_int8_speed(float_proto, proto, spec.example)
        notes.append(speed_note(speed))
    meta = build_metadata(model_name=name, task=task, target=target, precision=PRECISION[target],
                          io_dtype="fp16" if io_fp16 else "fp32", batch=batch, opset=opset, exporter=EXPORTER,
                          parity=report.to_dict(), extra=spec.metadata)
    write_metadata(proto, meta)
    path = Path(out) if out is not None else Path("runs") / "export" / f"{name}-{target}{'-nms' if nms else ''}.onnx"
    _write(proto, path)
    inputs = [d.dim_param or d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    return ExportResult(path=path, model=name, task=task, target=target, precision=PRECISION[target],
                        size_bytes=path.stat().st_size, opset=opset, inputs=inputs,
                        outputs=graph_ops.output_names(proto), parity=report, seconds=time.perf_counter() - start,
                        notes=notes + report.notes, speed=speed)


# ------------------------------------------------------------------------------------------------------
def _resolve_model(model: nn.Module | str, weights: Any) -> tuple[nn.Module, str]:
    if isinstance(model, str):
        built = create_model(model, checkpoint_path=weights)
        return built.eval(), model
    if weights is not None:
        raise ExportError("weights= is for a model given by name; load the weights into the model you pass instead.")
    if not isinstance(model, nn.Module):
        raise ExportError(f"Cannot export a {type(model).__name__}; pass an nn.Module or a registry name.")
    return model, getattr(model, "model_name", None) or type(model).__name__.lower()


def _float_graph(spec: GraphSpec, opset: int, simplify: bool | None) -> tuple[onnx.ModelProto, list[str]]:
    """Trace, give shared weights one initializer per use, and simplify (when asked / installed)."""
    proto = trace_to_onnx(spec.module, spec.example, input_names=[spec.input_name], output_names=spec.trace_outputs,
                          dynamic_axes=spec.dynamic_axes, opset=opset)
    graph_ops.inline_shared_initializers(proto)
    if simplify is False:
        return proto, []
    if simplify is None and not onnxslim_available():
        return proto, [MISSING_NOTE]
    proto, note = slim(proto)
    return proto, [note] if note else []


def _check_batch(batch: int | str) -> int | str:
    if batch == "dynamic":
        return batch
    if isinstance(batch, str) and batch.isdigit():
        batch = int(batch)
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ExportError(f"batch={batch!r} must be 'dynamic' or a positive integer.")
    return batch


def task_of(model: nn.Module) -> str:
    """The task name of ``model``: from its registry card, else from what it looks like."""
    name = getattr(model, "model_name", None)
    if name:
        return get_card(name).task
    if hasattr(model, "head") and hasattr(model, "stride"):
        return detection.SPEC.name
    if hasattr(model, "config") and hasattr(model.config, "vocab_size"):
        return language.SPEC.name
    raise ExportError(f"Cannot tell whether {type(model).__name__} is a detector or a language model; export a "
                      "registry model (zoo.create_model) or set model.model_name to its registry name.")


def _graph_spec(model: nn.Module, task: TaskSpec, *, imgsz: Any, seq_len: int | None, batch: int | str,
                dynamic_hw: bool, nms: NMSSettings | None) -> GraphSpec:
    """The task's graph spec, refusing the size option of another task."""
    given = {"imgsz": imgsz, "seq_len": seq_len}
    wrong = [k for k, v in given.items() if v is not None and k != task.size_arg]
    if wrong:
        raise ExportError(f"{wrong[0]} is not an option of a {task.title}; a {task.title} takes {task.size_arg}.")
    return task.graph_spec(model, size=given[task.size_arg], batch=batch, dynamic_hw=dynamic_hw, nms=nms)


def _default_tolerance(target: str, task: TaskSpec) -> float:
    return task.edge_tolerance if target == "edge" else TOLERANCES[target]


def _metric(target: str, task: TaskSpec) -> str:
    return task.edge_metric if target == "edge" else NUMERIC_METRIC


def _apply_target(proto: onnx.ModelProto, spec: GraphSpec, task: TaskSpec, target: str, tail: list[str], *,
                  io_fp16: bool, full_int8: bool, calibration: Any, calibration_size: int,
                  progress: bool, notes: list[str]) -> onnx.ModelProto:
    if target == "gpu":
        return to_float16(proto, keep_float32_nodes=tail, io_fp16=io_fp16)
    if target == "edge":
        from zoo.export.quantize import quantize_int8  # deferred: onnxruntime.quantization is slow to import

        batches = [b.numpy() for b in task.calibration_inputs(spec, calibration, calibration_size)]
        logger.info("calibrating int8 on %d %s inputs", len(batches), task.input_name)
        return quantize_int8(proto, batches, input_name=spec.input_name, exclude_nodes=tail, full_int8=full_int8,
                             notes=notes)
    return proto


def _check(proto: onnx.ModelProto, spec: GraphSpec, target: str, task: TaskSpec, *, tolerance: float | None,
           calibration: Any, eval_data: Any, calibration_size: int, eval_size: int, batch: int | str,
           progress: bool) -> ParityReport:
    """Run the graph in onnxruntime and fill a ``ParityReport`` (raises nothing itself)."""
    tol = tolerance if tolerance is not None else _default_tolerance(target, task)
    notes: list[str] = []
    provider = "CPUExecutionProvider"
    if target == "gpu":
        if "CUDAExecutionProvider" in available_providers():
            provider = "CUDAExecutionProvider"
        else:
            notes.append("CUDA provider not available: gpu parity measured with the CPU provider")
    if target == "gpu" and provider == "CPUExecutionProvider" and tolerance is None:
        tol *= CPU_FP16_FACTOR
        notes.append(f"gpu bound loosened to {tol:g} on the CPU provider (its float16 kernels are not CUDA's)")
    try:
        ort_model = OnnxModel.from_proto(proto, [provider], name=f"<{target} export>")
    except OnnxModelError as err:
        if target != "gpu" or provider == "CUDAExecutionProvider":
            raise
        notes.append(f"the CPU provider cannot run this float16 graph ({err}); parity is checked where CUDA exists")
        return ParityReport(target, _metric(target, task), None, tol, None, provider, notes=notes)
    max_abs, max_norm, nms_ok, shapes = numeric_parity(ort_model, spec)
    report = ParityReport(target, _metric(target, task), None, tol, None, provider, max_abs_diff=max_abs,
                          max_norm_diff=max_norm, inputs=shapes, nms_matches=nms_ok, notes=notes)
    if target != "edge":
        report.value, report.passed = max_norm, bool(max_norm <= tol)
        return report
    edge_accuracy(report, ort_model, spec, task, calibration=calibration, eval_data=eval_data, eval_size=eval_size,
                  batch=batch, calibration_size=calibration_size, progress=progress)
    return report


def _verify_final(final: onnx.ModelProto, spec: GraphSpec, target: str) -> None:
    """The graph about to be written (check-only outputs removed) must still run and give finite outputs.

    Cheap insurance that no graph edit after the parity check (output pruning) broke the file.
    """
    x = spec.check_inputs[0]
    outs = OnnxModel.from_proto(final, ["CPUExecutionProvider"], name="<final graph>").run(x)
    ok = sorted(outs) == sorted(spec.saved_outputs) and all(
        v.shape[0] == x.shape[0] and (v.dtype.kind != "f" or bool(np.isfinite(v).any())) for v in outs.values())
    if not ok:  # pragma: no cover - would be an exporter bug
        raise ParityError(f"The {target} graph broke after its parity check (outputs {sorted(outs)}); nothing was "
                          "written. Please report this bug.")


def _raise_if_failed(report: ParityReport, name: str, target: str) -> None:
    if report.nms_matches is False:
        raise ParityError(f"{name} {target} export: the NMS inside the graph disagrees with zoo.predict's NMS on the "
                          "same decoded output; nothing was written. Export without --nms and report this bug.")
    if report.passed is False:
        hint = ("re-export with --target cpu, calibrate on more representative data (--data, --calib-size)"
                if target == "edge" else "this is an exporter or runtime bug; export with --target cpu to compare")
        raise ParityError(f"{name} {target} export failed its parity check: {report.summary()}; nothing was written "
                          f"({hint}, or pass a looser tolerance if you accept the difference).")


def _write(proto: onnx.ModelProto, path: Path) -> None:
    if path.suffix.lower() != ".onnx":
        raise ExportError(f"Output file {path} must end in .onnx.")
    data = proto.SerializeToString()
    if len(data) >= 2**31:  # protobuf's hard limit; no zoo model comes close (GPT-2 small fp32 is 0.5 GB)
        raise ExportError(f"The exported graph is {len(data) / 1e9:.1f} GB, over ONNX's 2 GB single-file limit.")
    with atomic_path(path, suffix=".onnx.tmp") as tmp:
        tmp.write_bytes(data)
    logger.info("wrote %s (%.2f MB)", path, len(data) / 1e6)
