"""The ``edge`` target: static int8 quantization in QDQ form that onnxruntime runs as integer kernels.

Uses onnxruntime's quantization tools (``quantize_static``), whose QDQ output (QuantizeLinear /
DequantizeLinear pairs around each quantized op) is what onnxruntime's CPU provider fuses into integer
kernels and what TensorRT, QNN, OpenVINO and XNNPACK import. What pays, measured on LeYOLO-Nano@640
(batch 1, 2 threads, interleaved medians, ``benchmarks/deploy_latency.py``; numbers in README "(issue 14)"):

* **Convolution nets: every op onnxruntime supports is quantized** (Conv, the SiLU's Sigmoid and Mul,
  residual Add, Concat, MaxPool, Resize), outputs included. onnxruntime then fuses the whole backbone into
  one integer chain (QLinearConv -> QLinearSigmoid -> QLinearMul -> QLinearConv ..., no float round trip).
  The old form, only Conv inputs and weights quantized, left every Conv dequantized back to float: 2.2x
  *slower* than float32 here. The SiLU gets its own QDQ (a uint8 lookup table for the Sigmoid, an
  integer Mul), which is what lets the chain continue through it.
* **SiLU-aware ranges.** A conv output that feeds a SiLU is the pre-activation, whose per-tensor range is
  set by a few channels far below zero (LeYOLO-Nano's ``model.1`` conv: -156 .. +12 on real photos), and
  one uint8 step over that range wipes out the channels that matter. SiLU is flat there (silu(-6) =
  -0.015, its minimum is -0.28), so the calibrated minimum of these tensors is clipped at
  ``SILU_FLOOR = -6``: the error this adds is below one uint8 step of the clipped range.
* weights int8, symmetric, **per output channel** (depthwise convs have wildly different ranges per
  channel); activations uint8, asymmetric (the U8S8 pair is onnxruntime's fast x86 path, VNNI where the
  CPU has it); calibration ``percentile`` / ``entropy`` / ``minmax`` (see ``CALIBRATION``), collected a
  few inputs at a time so memory stays bounded (``CalibStridedMinMax``);
* the detector's decode tail (DFL softmax and its fixed 0..15 expectation, anchors, box arithmetic) and the last
  head convolutions (box/class logits, whose range a calibration set without, say, buses would clip) stay
  float: int8 box coordinates would move every box by pixels. ``full_int8=True`` quantizes the head
  convolutions too (for all-integer accelerators; costs accuracy, which the edge check reports).
* **Transformers** (no Conv in the graph) keep the previous scheme: MatMul/Gemm with constant weights,
  inputs only; their softmax / norms / residual stream are too range-sensitive for uint8 outputs.

The trade-off as measured (Nano@640 with the released weights, this shared 2-core AMD EPYC with
AVX512-VNNI and no AMX, interleaved medians; the machine ran other jobs, so only ratios mean much):

====================================================  ===============  ===================================
graph                                                 latency / fp32   agreement on photos (mAP50-95/50)
====================================================  ===============  ===================================
Conv inputs + weights only (the previous edge file)   2.19x            0.92 / 1.00
every op, MinMax, no SiLU floor                       0.88x - 1.01x    0.55 / 0.59 (0.48 / 0.57 synthetic calib.)
every op, MinMax, SiLU floor                          same graph       0.95 / 1.00
every op, percentile, SiLU floor (default)            0.88x            1.00 / 1.00 (0.98 / 1.00 with bus.jpg)
====================================================  ===============  ===================================

Where the time goes (``benchmarks/ort_profile.py``, onnxruntime 1.32, Nano@640, 1 thread, summed kernel
times; on an Intel Xeon with AVX512-VNNI and AMX, with the DFL written as explicit arithmetic): the integer
1x1 convolutions (80 % of the MACs) run 2.2x faster than float (17.4 -> 7.9 ms), but the SiLU as
QLinearSigmoid + QLinearMul costs 16.1 ms where float runs one fused QuickGelu kernel (10.9 ms), integer
depthwise convolutions are slower than float (7.3 -> 8.7 ms), dense 3x3 too (2.5 -> 4.2 ms), and the
Quantize / Dequantize / reorders at the float ends add ~3 ms: 44.6 -> 46.8 ms. At 2 threads the float
kernels parallelise better (26.2 -> 32.7 ms). So on that CPU the int8 file is 1.1-1.7x *slower* than
float32 (0.87x only for the larger Small@640 at 1 thread), on the AMD EPYC above 0.92x at 1 thread: the
0.8x target is missed, and no choice left to the quantizer changes that (``benchmarks/int8_variants.py``
on the Xeon, 2 threads: default 1.12x of float, per-tensor weights 1.18x, signed int8 activations 4.2x, no
SiLU floor 1.17x); it takes an integer SiLU and a faster integer depthwise kernel in onnxruntime (README
"(issue 14)"). Percentile calibration costs time at export (a
histogram per tensor: ~2x MinMax's export time) and is the default because it agrees best.
"""
from __future__ import annotations

import contextlib
import logging
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx

logger = logging.getLogger(__name__)

QUANTIZED_OPS = ("Conv", "MatMul", "Gemm")  # transformers: compute ops only, inputs only
SILU_FLOOR = -6.0  # silu(-6) = -0.0148: pre-activation values below it are clipped (module docstring)
CALIBRATION = "percentile"  # see the module docstring for the measured alternatives
CALIBRATION_METHODS = ("minmax", "percentile", "entropy")
PERCENTILE = 99.999


def _reader_class():  # deferred: onnxruntime.quantization is slow to import and not needed elsewhere
    from onnxruntime.quantization import CalibrationDataReader

    class ArrayReader(CalibrationDataReader):
        """Feeds a fixed list of input arrays to the calibrator, one per call."""

        def __init__(self, input_name: str, batches: Sequence[np.ndarray]) -> None:
            self.input_name, self.batches, self.i, self.end = input_name, list(batches), 0, len(batches)

        def get_next(self) -> dict[str, np.ndarray] | None:
            if self.i >= self.end:
                return None
            self.i += 1
            return {self.input_name: self.batches[self.i - 1]}

        def rewind(self) -> None:
            self.i = 0

        def __len__(self) -> int:
            return len(self.batches)

        def set_range(self, start_index: int, end_index: int) -> None:  # strided calibration, bounded memory
            self.i, self.end = start_index, min(end_index, len(self.batches))

    return ArrayReader


@contextlib.contextmanager
def _quiet_root_logger() -> Iterator[None]:
    """Route onnxruntime.quantization's root-logger warnings to our debug log while it runs.

    It logs through ``logging.warning`` (the root logger) for expected situations, e.g. advice to run
    its pre-processing, which our graphs do not need (already constant-folded and shape-inferred).
    """
    root = logging.getLogger()

    def to_debug(record: logging.LogRecord) -> bool:
        if record.name == "root":
            logger.debug("onnxruntime.quantization: %s", record.getMessage())
            return False
        return True

    root.addFilter(to_debug)
    try:
        yield
    finally:
        root.removeFilter(to_debug)


def silu_inputs(model: onnx.ModelProto) -> list[str]:
    """Conv outputs that feed a SiLU written as ``x * sigmoid(x)`` (both a Sigmoid and a Mul consume them)."""
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    out = []
    for node in model.graph.node:
        if node.op_type != "Conv":
            continue
        users = consumers.get(node.output[0], [])
        sig = [u for u in users if u.op_type == "Sigmoid"]
        if sig and any(u.op_type == "Mul" and sig[0].output[0] in u.input for u in users):
            out.append(node.output[0])
    return out


def tensor_ranges(model: onnx.ModelProto, tensors: Sequence[str], batches: Sequence[np.ndarray], *,
                  input_name: str) -> dict[str, tuple[float, float]]:
    """Min and max of each of ``tensors`` over ``batches`` (one batch in memory at a time)."""
    import onnxruntime as ort  # deferred with the quantizer: only the edge target needs it

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    del probe.graph.output[:]
    for name in tensors:
        probe.graph.output.add().name = name
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(probe.SerializeToString(), options, providers=["CPUExecutionProvider"])
    lo = {t: np.inf for t in tensors}
    hi = {t: -np.inf for t in tensors}
    for batch in batches:
        for name, value in zip(tensors, session.run(list(tensors), {input_name: batch})):
            lo[name], hi[name] = min(lo[name], float(value.min())), max(hi[name], float(value.max()))
    return {t: (lo[t], hi[t]) for t in tensors}


def _silu_overrides(model: onnx.ModelProto, batches: Sequence[np.ndarray], input_name: str,
                    exclude: set[str]) -> dict[str, list[dict[str, Any]]]:
    """TensorQuantOverrides that clip SiLU pre-activations at ``SILU_FLOOR`` (module docstring)."""
    producers = {n.output[0]: n.name for n in model.graph.node if n.output}
    tensors = [t for t in silu_inputs(model) if producers.get(t) not in exclude]
    if not tensors:
        return {}
    ranges = tensor_ranges(model, tensors, batches, input_name=input_name)
    return {t: [{"rmin": np.float32(max(lo, SILU_FLOOR)), "rmax": np.float32(max(hi, 0.0))}]
            for t, (lo, hi) in ranges.items() if lo < SILU_FLOOR}


def _calibration_method(name: str) -> Any:
    from onnxruntime.quantization import CalibrationMethod  # deferred: slow import

    if name not in CALIBRATION_METHODS:
        raise ValueError(f"Unknown calibration method {name!r}; choose one of {', '.join(CALIBRATION_METHODS)}.")
    return {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
            "entropy": CalibrationMethod.Entropy}[name]


def quantize_int8(model: onnx.ModelProto, batches: Sequence[np.ndarray], *, input_name: str,
                  exclude_nodes: Sequence[str] = (), per_channel: bool = True, full_int8: bool = False,
                  calibration: str = CALIBRATION, silu_floor: bool = True,
                  notes: list[str] | None = None) -> onnx.ModelProto:
    """Statically quantize a float32 graph to int8 QDQ, calibrated on ``batches`` (module docstring).

    Args:
        model: float32 model (not modified).
        batches: calibration inputs, each shaped like the graph input (e.g. (1, 3, H, W) float32).
        input_name: the graph input they feed.
        exclude_nodes: node names left in float (the decode tail, and the head convs unless ``full_int8``).
        per_channel: one weight scale per output channel (default; per-tensor only for experiments).
        full_int8: transformers: quantize the matmul outputs too (all-integer graphs for NPU toolchains;
            costs accuracy, which the edge check reports). Convolution nets quantize every output anyway;
            for them the exporter stops excluding the head convs.
        calibration: ``percentile`` (default), ``entropy`` or ``minmax``.
        silu_floor: clip SiLU pre-activation ranges at ``SILU_FLOOR``.
        notes: receives a line when the calibration had to fall back to ``minmax`` (percentile and entropy
            histogram every tensor, and numpy cannot bin a tensor that is constant to float32 precision over
            the calibration inputs, e.g. a saturated sigmoid of an untrained model).

    Returns:
        The quantized model.
    """
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    if not batches:
        raise ValueError("int8 calibration needs at least one input batch; pass calibration data.")
    method = _calibration_method(calibration)
    conv_net = any(n.op_type == "Conv" for n in model.graph.node)
    inferred = onnx.shape_inference.infer_shapes(model)  # the quantizer needs value_info for every tensor
    extra: dict[str, Any] = {"WeightSymmetric": True, "ActivationSymmetric": False,
                             "CalibStridedMinMax": _stride(len(batches)), "CalibPercentile": PERCENTILE}
    if conv_net:  # every op onnxruntime can run in integer: one integer chain from input to head
        op_types = None
        if silu_floor:
            extra["TensorQuantOverrides"] = _silu_overrides(inferred, batches, input_name, set(exclude_nodes))
    else:
        op_types = list(QUANTIZED_OPS)
        extra.update({"MatMulConstBOnly": True,
                      "OpTypesToExcludeOutputQuantization": [] if full_int8 else list(QUANTIZED_OPS)})
    with tempfile.TemporaryDirectory(prefix="effzoo-quant-") as tmp, _quiet_root_logger():
        src, dst = Path(tmp) / "float.onnx", Path(tmp) / "int8.onnx"
        onnx.save(inferred, str(src))

        def run(calibrate_method: Any) -> None:
            quantize_static(
                str(src), str(dst), _reader_class()(input_name, batches),
                quant_format=QuantFormat.QDQ,
                per_channel=per_channel,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                op_types_to_quantize=op_types,
                nodes_to_exclude=list(exclude_nodes),
                calibrate_method=calibrate_method,
                extra_options=extra,
            )

        try:
            run(method)
        except ValueError as err:
            if "Too many bins" not in str(err) or calibration == "minmax":
                raise
            line = (f"{calibration} calibration could not histogram a tensor that is constant to float32 precision "
                    "over the calibration inputs (an untrained or saturated layer); calibrated with minmax instead")
            logger.warning("int8: %s", line)
            if notes is not None:
                notes.append(line)
            run(_calibration_method("minmax"))
        quantized = onnx.load(str(dst))
    n_q = sum(1 for n in quantized.graph.node if n.op_type == "QuantizeLinear")
    logger.info("int8 QDQ graph (%s calibration): %d QuantizeLinear nodes, %d nodes left in float on purpose, %d SiLU "
                "ranges floored", calibration, n_q, len(exclude_nodes), len(extra.get("TensorQuantOverrides", {})))
    return quantized


def _stride(n: int, most: int = 2) -> int:
    """The largest divisor of ``n`` up to ``most``: calibration statistics are collected that many inputs at a time."""
    return max(d for d in range(1, min(most, n) + 1) if n % d == 0)
