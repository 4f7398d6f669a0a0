"""The ``edge`` target: static int8 quantization in QDQ form with per-channel weights.

Uses onnxruntime's quantization tools (``quantize_static`` with a ``CalibrationDataReader``), the
toolchain onnxruntime itself optimises for: QDQ (QuantizeLinear/DequantizeLinear pairs around each
quantized op) is the format that onnxruntime fuses into integer kernels on CPU and that TensorRT, QNN,
OpenVINO and XNNPACK import, unlike the older QOperator form. Choices:

* weights int8, symmetric, **per output channel** (depthwise convs have wildly different ranges per
  channel; one scale per tensor would zero out the small channels); activations uint8, asymmetric,
  MinMax-calibrated (the U8S8 pair is onnxruntime's fast x86 path);
* only the compute ops are quantized (Conv, and MatMul/Gemm whose weight is a constant): their inputs
  and weights, **not their outputs**. The elementwise ops between them (SiLU, residual adds, softmax)
  run in float. Why not the outputs: a conv output is the pre-activation, whose per-tensor range is
  dominated by a few channels (LeYOLO-Nano's stem: +-140 while most channels stay within +-1), so one
  uint8 step wipes out the small channels; quantized this way Nano's bus.jpg bus score fell from 0.87
  to 0.0007 with calibration on bus.jpg itself, against 0.86 with float outputs (``full_int8=True``
  quantizes them anyway, for accelerators that only run all-integer graphs);
* the detector's decode tail (DFL softmax and its fixed 0..15 conv, anchors, box arithmetic) is
  excluded: int8 box coordinates would move every box by pixels; so are the last head convolutions,
  whose outputs are box/class logits: an activation range calibrated on images without, say, buses
  clips every bus logit at its maximum (a class logit clipped at 0 reads as score 0.5).
"""
from __future__ import annotations

import contextlib
import logging
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import onnx

logger = logging.getLogger(__name__)

QUANTIZED_OPS = ("Conv", "MatMul", "Gemm")


def _reader_class():  # deferred: onnxruntime.quantization is slow to import and not needed elsewhere
    from onnxruntime.quantization import CalibrationDataReader

    class ArrayReader(CalibrationDataReader):
        """Feeds a fixed list of input arrays to the calibrator, one per call."""

        def __init__(self, input_name: str, batches: Sequence[np.ndarray]) -> None:
            self.input_name, self.batches, self.i = input_name, list(batches), 0

        def get_next(self) -> dict[str, np.ndarray] | None:
            if self.i >= len(self.batches):
                return None
            self.i += 1
            return {self.input_name: self.batches[self.i - 1]}

        def rewind(self) -> None:
            self.i = 0

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


def quantize_int8(model: onnx.ModelProto, batches: Sequence[np.ndarray], *, input_name: str,
                  exclude_nodes: Sequence[str] = (), per_channel: bool = True, full_int8: bool = False
                  ) -> onnx.ModelProto:
    """Statically quantize a float32 graph to int8 QDQ, calibrated on ``batches``.

    Args:
        model: float32 model (not modified).
        batches: calibration inputs, each shaped like the graph input (e.g. (1, 3, H, W) float32).
        input_name: the graph input they feed.
        exclude_nodes: node names left in float (the decode tail).
        per_channel: one weight scale per output channel (default; per-tensor only for experiments).
        full_int8: quantize the conv/matmul outputs too, for accelerators that need an all-integer graph
            (NPU toolchains); costs accuracy (see module docstring), which the edge parity check reports.

    Returns:
        The quantized model.
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    if not batches:
        raise ValueError("int8 calibration needs at least one input batch; pass calibration data.")
    inferred = onnx.shape_inference.infer_shapes(model)  # the quantizer needs value_info for every tensor
    with tempfile.TemporaryDirectory(prefix="effzoo-quant-") as tmp, _quiet_root_logger():
        src, dst = Path(tmp) / "float.onnx", Path(tmp) / "int8.onnx"
        onnx.save(inferred, str(src))
        quantize_static(
            str(src), str(dst), _reader_class()(input_name, batches),
            quant_format=QuantFormat.QDQ,
            per_channel=per_channel,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            op_types_to_quantize=list(QUANTIZED_OPS),
            nodes_to_exclude=list(exclude_nodes),
            calibrate_method=CalibrationMethod.MinMax,
            extra_options={"MatMulConstBOnly": True, "WeightSymmetric": True, "ActivationSymmetric": False,
                           "OpTypesToExcludeOutputQuantization": [] if full_int8 else list(QUANTIZED_OPS)},
        )
        quantized = onnx.load(str(dst))
    n_q = sum(1 for n in quantized.graph.node if n.op_type == "QuantizeLinear")
    logger.info("int8 QDQ graph: %d QuantizeLinear nodes, %d nodes left in float on purpose", n_q, len(exclude_nodes))
    return quantized
