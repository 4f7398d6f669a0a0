"""int8 for OpenVINO: NNCF post-training quantization of an IR, calibrated on the task's data.

NNCF is the int8 path OpenVINO users know (``nncf.quantize`` on an ``openvino.Model``): it places
FakeQuantize nodes where the CPU plugin has int8 kernels and fuses them with the convolutions, the
activations and the residual adds, so no float round trip is left between two convolutions. Choices:

* preset MIXED: symmetric int8 weights (per output channel) and asymmetric activations, the preset NNCF
  recommends for models whose activations are not centred at zero (every SiLU output is >= -0.28);
* the decode tail (DFL softmax and its fixed conv, anchors, box arithmetic, the class sigmoid) stays in
  float, as in the ``edge`` ONNX target: int8 box coordinates would move every box by pixels. The tail is
  named by its ONNX node names; the IR keeps them as friendly names, some with a suffix the converter
  adds (``/Conv/WithoutBiases``), hence patterns rather than exact names;
* fast bias correction (NNCF's default) and a small calibration set (``--calib-size``, default 32): PTQ
  statistics settle within a few dozen images and memory stays small.
"""
from __future__ import annotations

import importlib.util
import logging
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from zoo.core.errors import MissingExtraError

logger = logging.getLogger(__name__)

EXTRA_NOTE = "OpenVINO int8 needs NNCF: pip install effzoo[openvino] (openvino and nncf)"


def quantize_ir(model: Any, batches: Sequence[np.ndarray], *, input_name: str, keep_float: Sequence[str] = (),
                progress: bool = False) -> Any:
    """An int8 copy of the ``openvino.Model`` ``model``, calibrated on ``batches``.

    Args:
        model: float32 ``openvino.Model`` (converted from the parity-checked ONNX graph).
        batches: calibration inputs shaped like the graph input.
        input_name: the graph input they feed.
        keep_float: ONNX node names that stay in float (the decode tail).
        progress: NNCF's own progress bars.

    Raises:
        MissingExtraError: nncf is not installed (names the extra).
        ValueError: no calibration data.
    """
    if importlib.util.find_spec("nncf") is None:
        raise MissingExtraError(EXTRA_NOTE)
    import nncf  # deferred: optional extra, slow to import
    if not batches:
        raise ValueError("int8 calibration needs at least one input batch; pass calibration data.")
    present = {op.get_friendly_name() for op in model.get_ordered_ops()}
    patterns = [re.escape(name) + r"(/.*)?" for name in keep_float]
    ignored = nncf.IgnoredScope(patterns=patterns, validate=False) if patterns else None
    logger.info("NNCF int8: %d calibration inputs, %d ops kept in float (%d of them named in the IR)", len(batches),
                len(keep_float), sum(1 for n in keep_float if n in present))
    dataset = nncf.Dataset(list(batches), lambda x: {input_name: x})
    level = logging.getLogger("nncf").level
    if not progress:
        logging.getLogger("nncf").setLevel(logging.WARNING)
    try:
        return nncf.quantize(model, dataset, preset=nncf.QuantizationPreset.MIXED, subset_size=len(batches),
                             ignored_scope=ignored)
    finally:
        logging.getLogger("nncf").setLevel(level)
