"""``export_openvino``: any registry model -> an OpenVINO IR (``.xml`` + ``.bin``), parity-checked.

Why OpenVINO: on x86 CPUs it is the runtime YOLO users deploy to, and on this machine it runs the same
LeYOLO ONNX graph faster than onnxruntime (``benchmarks/deploy_latency.py``). Pipeline:

1. the float32 ONNX graph of the ``cpu`` target (same trace, same simplification), checked against
   PyTorch in onnxruntime first (1e-4 normalised): the IR starts from a graph proven right;
2. ``openvino.convert_model`` on it; weights stored as float32, or float16 with ``fp16=True``
   (OpenVINO's weight compression: half the file, computed in float32 on CPUs without native fp16);
3. ``int8=True``: NNCF post-training quantization (:mod:`zoo.export.nncf_quantize`) calibrated on the
   same data as the ``edge`` target (``calibration`` / ``calibration_size``), decode tail kept in float;
4. the IR's own parity check, run by OpenVINO on the written-to-be files read back from a temporary
   folder (so a broken save is caught too): float32/float16 numerically (1e-4 / 1e-2 normalised, float32
   inference precision), int8 by the task's accuracy check (AP drop on labelled data with the model's
   classes, else agreement with the float32 model on real photos, :mod:`zoo.tasks.detection.agreement`);
5. atomic publication: the ``.bin`` is moved into place before the ``.xml`` that names it, and a failed
   check publishes neither.
"""
from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import onnx
from torch import nn
from zoo.export import graph as graph_ops
from zoo.export.edge_check import edge_accuracy
from zoo.export.metadata import build_metadata
from zoo.export.nncf_quantize import quantize_ir
from zoo.export.onnx_export import (
    ExportResult,
    _check_batch,
    _float_graph,
    _graph_spec,
    _raise_if_failed,
    _resolve_model,
    task_of,
)
from zoo.export.parity import NUMERIC_METRIC, TOLERANCES, ParityReport, numeric_parity
from zoo.export.speed_check import openvino_int8_speed, speed_note
from zoo.export.trace import DEFAULT_OPSET, EXPORTER, check_opset

from zoo.core.errors import ExportError, ParityError
from zoo.core.fileio import check_output_path
from zoo.runtime.onnx import OnnxModel
from zoo.runtime.openvino import RT_SECTION, OpenVinoModel, bin_path, require_openvino
from zoo.tasks import get_task

logger = logging.getLogger(__name__)

TARGET = "openvino"


def _precision(fp16: bool, int8: bool) -> str:
    return "int8" if int8 else ("fp16" if fp16 else "fp32")


def export_openvino(
    model: nn.Module | str,
    *,
    fp16: bool = False,
    int8: bool = False,
    imgsz: int | tuple[int, int] | None = None,
    seq_len: int | None = None,
    batch: int | str = "dynamic",
    opset: int = DEFAULT_OPSET,
    dynamic_hw: bool = False,
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
    """Export ``model`` to an OpenVINO IR and prove it computes what the model computes (module docstring).

    Args mirror :func:`zoo.export.export_onnx`; in addition:
        fp16: store float16 weights (ignored with ``int8``, whose weights are int8).
        int8: NNCF post-training quantization on ``calibration`` (``calibration_size`` inputs).
        out: the ``.xml`` path (its ``.bin`` goes beside it); default ``runs/export/<model>-openvino.xml``.

    Raises:
        ExportError: bad option, or ``out`` not an ``.xml`` path.
        ParityError: a check failed; nothing was written.
        ModuleNotFoundError: openvino / nncf missing (the message names the extra).
    """
    start = time.perf_counter()
    ov = require_openvino()
    if tolerance is not None and not (isinstance(tolerance, (int, float)) and 0 < tolerance < float("inf")):
        raise ExportError(f"tolerance must be a positive finite number (got {tolerance!r}).")
    precision = _precision(fp16, int8)
    model, name = _resolve_model(model, weights)
    path = Path(out) if out is not None else Path("runs") / "export" / f"{name}-openvino-{precision}.xml"
    if path.suffix.lower() != ".xml":
        raise ExportError(f"Output file {path} must end in .xml (an OpenVINO IR; its .bin is written beside it).")
    check_output_path(path, what="output")
    batch = _check_batch(batch)
    check_opset(opset)
    task_spec = get_task(task_of(model))
    spec = _graph_spec(model, task_spec, imgsz=imgsz, seq_len=seq_len, batch=batch, dynamic_hw=dynamic_hw, nms=None)
    proto, notes = _float_graph(spec, opset, simplify)
    tail = graph_ops.descendants(proto, spec.tail_inputs) + graph_ops.nearest_producers(proto, spec.tail_inputs, "Conv")
    graph_ops.drop_outputs(proto, spec.tail_inputs)
    if check:  # the ONNX graph the IR is made from must itself match PyTorch
        _, onnx_diff, _, _ = numeric_parity(OnnxModel.from_proto(proto, ["CPUExecutionProvider"], name="<onnx>"), spec)
        if not onnx_diff <= TOLERANCES["cpu"]:
            raise ParityError(f"{name} openvino export: the float32 ONNX graph it is converted from differs from "
                              f"PyTorch by {onnx_diff:.3g} (normalised, tolerance {TOLERANCES['cpu']:g}); nothing was "
                              "written. This is an exporter bug: please report it.")

    with tempfile.TemporaryDirectory(prefix=".effzoo-ov-", dir=_existing_parent(path)) as tmp:
        src = Path(tmp) / "float.onnx"
        onnx.save(proto, str(src))
        ov_model = ov.convert_model(str(src))
        float_xml = Path(tmp) / "float.xml"
        if int8 and check:  # the float IR, to time the int8 one against (zoo.export.speed_check)
            ov.save_model(ov_model, str(float_xml), compress_to_fp16=False)
        if int8:
            batches = [b.numpy() for b in task_spec.calibration_inputs(spec, calibration, calibration_size)]
            ov_model = quantize_ir(ov_model, batches, input_name=spec.input_name, keep_float=tail, progress=progress)
        checked = Path(tmp) / "checked.xml"
        ov.save_model(ov_model, str(checked), compress_to_fp16=fp16 and not int8)
        if check:
            report = _check(checked, spec, task_spec, precision, tolerance=tolerance, calibration=calibration,
                            eval_data=eval_data, calibration_size=calibration_size, eval_size=eval_size, batch=batch,
                            progress=progress)
            _raise_if_failed(report, name, TARGET)
        else:
            report = ParityReport(TARGET, NUMERIC_METRIC, None, tolerance or 0.0, None, "OpenVINO:CPU",
                                  notes=["check disabled (--no-check)"])
        logger.info("%s openvino %s: %s", name, precision, report.summary())
        speed = openvino_int8_speed(float_xml, checked, spec.example) if int8 and check else None
        if speed:
            notes.append(speed_note(speed))
        meta = build_metadata(model_name=name, task=task_spec.name, target=TARGET, precision=precision, io_dtype="fp32",
                              batch=batch, opset=opset, exporter=EXPORTER, parity=report.to_dict(), extra=spec.metadata)
        final = ov.Core().read_model(str(checked))  # the checked files, plus their self-description
        for key, value in meta.items():
            final.set_rt_info(str(value), [RT_SECTION, key])
        staged = Path(tmp) / path.name
        ov.save_model(final, str(staged), compress_to_fp16=False)  # weights are already in their final type
        del final
        _publish(staged, path)
    inputs = [d if isinstance(d, int) else "dynamic" for d in OpenVinoModel(path).input_shape]
    size = path.stat().st_size + bin_path(path).stat().st_size
    return ExportResult(path=path, model=name, task=task_spec.name, target=TARGET, precision=precision, size_bytes=size,
                        opset=opset, inputs=inputs, outputs=list(spec.saved_outputs), parity=report,
                        seconds=time.perf_counter() - start, notes=notes + report.notes, speed=speed)


def _check(staged: Path, spec: Any, task: Any, precision: str, *, tolerance: float | None, calibration: Any,
           eval_data: Any, calibration_size: int, eval_size: int, batch: int | str, progress: bool) -> ParityReport:
    """Run the staged IR with OpenVINO (float32 inference precision) and fill a ``ParityReport``."""
    ir = OpenVinoModel(staged, inference_precision="f32")
    max_abs, max_norm, _, shapes = numeric_parity(ir, spec)
    if precision == "int8":
        tol = tolerance if tolerance is not None else task.edge_tolerance
        report = ParityReport(TARGET, task.edge_metric, None, tol, None, "OpenVINO:CPU", max_abs_diff=max_abs,
                              max_norm_diff=max_norm, inputs=shapes)
        edge_accuracy(report, ir, spec, task, calibration=calibration, eval_data=eval_data, eval_size=eval_size,
                      batch=batch, calibration_size=calibration_size, progress=progress)
        return report
    tol = tolerance if tolerance is not None else TOLERANCES["gpu" if precision == "fp16" else "cpu"]
    return ParityReport(TARGET, NUMERIC_METRIC, max_norm, tol, bool(max_norm <= tol), "OpenVINO:CPU",
                        max_abs_diff=max_abs, max_norm_diff=max_norm, inputs=shapes)


def _existing_parent(path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    return str(path.parent)


def _publish(staged: Path, path: Path) -> None:
    """Move the staged ``.bin`` then ``.xml`` onto ``path`` (same folder: ``os.replace`` is atomic)."""
    for src, dst in ((bin_path(staged), bin_path(path)), (staged, path)):
        with open(src, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(src, dst)
    with contextlib.suppress(OSError):
        logger.info("wrote %s + %s (%.2f MB)", path, bin_path(path).name,
                    (path.stat().st_size + bin_path(path).stat().st_size) / 1e6)
