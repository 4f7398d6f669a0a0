"""Parity between an exported graph and the PyTorch model it came from, measured on every export.

Numeric parity (``cpu``, ``gpu``): onnxruntime and PyTorch run the same fixed inputs (a deterministic
pattern and seeded noise, at a batch size other than the traced one when the batch is dynamic) and we
take the largest difference of the main output. The checked number is the max abs difference of the
output in *normalised units*: detector box rows (cx, cy, w, h in input pixels) are divided by the input
side, scores and LM logits are used as they are. Why: at 640 px a float32 coordinate has a rounding
step of 6e-5 px, and two correct convolution libraries differ by tens of steps (LeYOLO-Nano with the
released weights: 2e-3 px raw, 3e-6 normalised, against scores that agree to 1e-6); an absolute 1e-4
on pixels would test the float format, not the export. The raw max abs difference is reported too.

Box rows are compared on the anchors that can become detections: reference best class score >= 0.001,
the validator's threshold (all anchors when none reaches it, e.g. an untrained model). A background
anchor's box is the mean of a flat 16-bin DFL distribution, which float16 moves by ~1 % of the image
side (Nano@128: 1.1e-2 in onnxruntime, 1.7e-2 in PyTorch's own half precision) with no effect on any
detection; on anchors that can be detected the same export differs by 1e-3. How a task measures its
difference is the task slice's (``GraphSpec.normalise``, :mod:`zoo.tasks.detection.export_graph`).

Tolerances: cpu 1e-4 (float32, must be rounding only), gpu 1e-2 (float16 activations) on the CUDA
provider. Without CUDA the gpu file is checked on the CPU provider, whose float16 kernels are not
CUDA's (Nano@640 on bus.jpg: scores within 2.5e-2); there the bound is ``CPU_FP16_FACTOR`` x looser,
which still catches a broken graph (NaN, a wrong layout, a lost cast), and a note says so.

Accuracy parity (``edge``): int8 changes outputs by design, so the check is the task metric on a set
disjoint from the calibration images/tokens: the COCO AP drop (absolute mAP units, default bound 0.05)
or the relative perplexity increase (default bound 0.10). The numeric differences are reported beside.

End-to-end (``--nms``) graphs also prove their NMS (``GraphSpec.output_check``): the graph's (boxes,
scores, classes) must equal ``non_max_suppression`` applied to the graph's own decoded output.
"""
from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from zoo.core.errors import ParityError
from zoo.tasks.base.graph import GraphSpec, eval_mode

logger = logging.getLogger(__name__)

TOLERANCES: dict[str, float] = {"cpu": 1e-4, "gpu": 1e-2}
NUMERIC_METRIC = "max_norm_diff"
CPU_FP16_FACTOR = 5.0  # gpu files checked on the CPU provider (see module docstring)


@dataclass
class ParityReport:
    """What the parity check measured; written into the file's metadata and returned to the caller.

    Attributes:
        target: ``cpu`` / ``gpu`` / ``edge``.
        metric: the checked quantity (``max_norm_diff``, ``AP drop`` or ``perplexity increase``).
        value: its measured value (None when it could not be measured, see ``notes``).
        tolerance: the bound ``value`` must not exceed.
        passed: True / False, or None when not measured.
        provider: the onnxruntime execution provider that ran the check.
        max_abs_diff / max_norm_diff: raw and normalised max abs difference of the main output.
        inputs: shapes of the fixed check inputs.
        nms_matches: end-to-end graphs: NMS inside == ``non_max_suppression`` outside.
        accuracy: edge: the metric on both sides, the dataset and its size.
        notes: why something was not measured or how it was measured.
    """

    target: str
    metric: str
    value: float | None
    tolerance: float
    passed: bool | None
    provider: str
    max_abs_diff: float | None = None
    max_norm_diff: float | None = None
    inputs: list[list[int]] = field(default_factory=list)
    nms_matches: bool | None = None
    accuracy: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (non-finite floats become null)."""
        return _json_safe(asdict(self))

    def summary(self) -> str:
        """One line for logs and the CLI."""
        if self.value is None:
            return f"parity {self.metric}: not measured ({'; '.join(self.notes) or 'no data'})"
        verdict = "ok" if self.passed else "FAILED"
        line = f"parity {self.metric} = {self.value:.3g} (tolerance {self.tolerance:g}, {self.provider}): {verdict}"
        if self.metric != NUMERIC_METRIC and self.max_norm_diff is not None:
            line += f"; max_norm_diff {self.max_norm_diff:.3g}"
        return line


def _json_safe(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj


def _reference_output(spec: GraphSpec, x: Tensor) -> Tensor:
    with torch.no_grad(), eval_mode(spec.reference):
        out = spec.reference(x)
    out = out.logits if hasattr(out, "logits") else out
    return (out[0] if isinstance(out, (tuple, list)) else out).float()


def numeric_parity(run: Any, spec: GraphSpec) -> tuple[float, float, bool | None, list[list[int]]]:
    """(max abs diff, max normalised diff, NMS matches or None, input shapes) over the fixed check inputs.

    Args:
        run: an :class:`~zoo.runtime.onnx.OnnxModel` of the graph (all outputs available via ``run``).
        spec: the graph spec with the reference model and check inputs.
    """
    max_abs, max_norm, nms_ok = 0.0, 0.0, None
    for x in spec.check_inputs:
        outs = run.run(x)
        got = torch.from_numpy(np.asarray(outs[spec.main_output], dtype=np.float32))
        ref = _reference_output(spec, x)
        if got.shape != ref.shape:
            raise ParityError(f"The exported graph returns {spec.main_output} of shape {tuple(got.shape)} but PyTorch "
                              f"returns {tuple(ref.shape)} for input {tuple(x.shape)}; nothing was written.")
        diff = (got - ref).abs()
        finite = torch.isfinite(got) == torch.isfinite(ref)
        if not bool(finite.all()):
            return math.inf, math.inf, nms_ok, [list(x.shape) for x in spec.check_inputs]
        diff = torch.where(torch.isfinite(ref), diff, torch.zeros_like(diff))
        max_abs = max(max_abs, float(diff.max()))
        normalised = spec.normalise(x, diff, ref) if spec.normalise is not None else diff
        max_norm = max(max_norm, float(normalised.max()))
        if spec.output_check is not None:
            same = spec.output_check(outs, got)
            nms_ok = same if nms_ok is None else (nms_ok and same)
    return max_abs, max_norm, nms_ok, [list(x.shape) for x in spec.check_inputs]
