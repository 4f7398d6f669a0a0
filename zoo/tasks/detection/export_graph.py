"""What a detector exports: (B, 3, H, W) images in [0, 1] -> decoded (B, 4 + nc, A), optionally then NMS.

The traced module is the family's deploy copy (LeYOLO with every BatchNorm folded) wrapped so that the
raw head maps come out too: the exporter keeps their consumers (DFL softmax, anchors, box arithmetic) in
float32 for the gpu/edge targets, where float16/int8 would move boxes by pixels.

Parity is measured in *normalised units*: box rows (cx, cy, w, h in input pixels) divided by the input
side, scores as they are, and only on anchors that can become detections (reference best class score
>= 0.001, the validator's threshold; all anchors when none reaches it, e.g. an untrained model). Why: at
640 px a float32 coordinate has a rounding step of 6e-5 px, two correct convolution libraries differ by
tens of steps (Nano with the released weights: 2e-3 px raw, 3e-6 normalised), and a background anchor's
box, the mean of a flat 16-bin DFL distribution, moves by ~1 % of the side in float16 with no effect on
any detection. End-to-end (``--nms``) graphs also prove their NMS: the graph's (boxes, scores, classes)
must equal :func:`~zoo.tasks.detection.postprocess.non_max_suppression` on the graph's own decoded output.
"""
from __future__ import annotations

import inspect
import json
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from zoo.core.errors import ExportError
from zoo.core.sizes import model_input_size
from zoo.runtime.onnx import unpad
from zoo.tasks.base.graph import GraphSpec, batch_sizes, inference_copy, reference_model
from zoo.tasks.detection.nms_graph import OUTPUT_NAMES as NMS_OUTPUTS
from zoo.tasks.detection.nms_graph import nms_padded
from zoo.tasks.detection.postprocess import non_max_suppression

DETECTABLE_SCORE = 0.001  # zoo val's confidence threshold: anchors below it never become detections
_NMS_ATOL = 1e-4  # the graph's NMS and zoo.predict's see the same decoded tensor: only float noise may differ


@dataclass(frozen=True)
class NMSSettings:
    """Post-processing baked into an end-to-end detector graph (the defaults of ``zoo.predict``)."""

    conf: float = 0.25
    iou: float = 0.7
    max_det: int = 300


class _DetectorGraph(nn.Module):
    """Decoded output (+ NMS outputs first when baked in) + the raw head maps as extra outputs."""

    def __init__(self, model: nn.Module, nms: NMSSettings | None, with_raw: bool) -> None:
        super().__init__()
        self.model, self.nms, self.with_raw = model, nms, with_raw

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        if self.with_raw:
            y, raw = self.model(x, return_raw=True)  # (B, 4 + nc, A), 3 x (B, 4*16 + nc, H/s, W/s)
        else:
            y, raw = self.model(x), []
        y = y[0] if isinstance(y, (tuple, list)) else y
        head: tuple[Tensor, ...] = (y,)
        if self.nms is not None:
            head = (*nms_padded(y, conf=self.nms.conf, iou=self.nms.iou, max_det=self.nms.max_det), y)
        return (*head, *raw)


def _supports_raw(model: nn.Module) -> bool:
    return "return_raw" in inspect.signature(model.forward).parameters


def pattern_images(batch: int, h: int, w: int) -> Tensor:
    """The goldens' deterministic input: pixel n = (n mod 251) / 250, varied per image by an offset."""
    n = 3 * h * w
    base = torch.arange(n, dtype=torch.int64)
    return torch.stack([((base + 97 * i) % 251).float().div(250.0).view(3, h, w) for i in range(batch)])


def _noise_images(batch: int, h: int, w: int, seed: int = 0) -> Tensor:
    return torch.rand(batch, 3, h, w, generator=torch.Generator().manual_seed(seed))


def normalised_diff(x: Tensor, diff: Tensor, ref: Tensor) -> Tensor:
    """``diff`` (B, 4 + nc, A) in normalised units, restricted to detectable anchors (module docstring)."""
    side = float(max(x.shape[2], x.shape[3]))
    boxes = diff[:, :4] / side  # (B, 4, A) fractions of the input side
    detectable = ref[:, 4:].amax(1, keepdim=True) >= DETECTABLE_SCORE  # (B, 1, A)
    if bool(detectable.any()):
        boxes = boxes * detectable
    return torch.cat([boxes, diff[:, 4:]], 1)


def _nms_check(nms: NMSSettings) -> Any:
    def check(outs: dict[str, Any], decoded: Tensor) -> bool:
        ours = unpad(*(torch.from_numpy(np.asarray(outs[k])) for k in NMS_OUTPUTS))
        theirs = non_max_suppression(decoded, conf=nms.conf, iou=nms.iou, max_det=nms.max_det)
        return all(a.shape == b.shape and bool(torch.allclose(a, b, atol=_NMS_ATOL, rtol=_NMS_ATOL))
                   for a, b in zip(ours, theirs))

    return check


def detection_graph_spec(model: nn.Module, *, size: int | tuple[int, int] | None, batch: int | str,
                         dynamic_hw: bool = False, nms: NMSSettings | None = None) -> GraphSpec:
    """The ``GraphSpec`` of a detector at ``size`` (default: the model card's input size)."""
    ref, deploy = reference_model(model), inference_copy(model)
    for module in deploy.modules():  # the DFL's exportable form: same numbers, 15x faster in onnxruntime (DFL)
        if hasattr(module, "explicit_softmax"):
            module.explicit_softmax = True
    stride = int(torch.as_tensor(getattr(ref, "stride", 32)).max())
    size = size if size is not None else model_input_size(ref)
    h, w = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    if h < stride or w < stride or h % stride or w % stride:
        raise ExportError(f"imgsz={size!r} must be a positive multiple of the model stride {stride} (e.g. "
                          f"{max(stride, round(h / stride) * stride)}).")
    names = list(getattr(ref, "names", []) or [])
    dynamic_batch, trace_batch, check_batch = batch_sizes(batch)
    with_raw = _supports_raw(deploy)
    raw = [f"raw{i}" for i in range(len(getattr(ref, "stride", [])))] if with_raw else []
    saved = list(NMS_OUTPUTS) if nms else ["output0"]
    trace_outputs = saved + (["output0"] if nms else []) + raw
    axes: dict[str, dict[int, str]] = {}
    in_axes = ({0: "batch"} if dynamic_batch else {}) | ({2: "height", 3: "width"} if dynamic_hw else {})
    if in_axes:
        axes["images"] = in_axes
        axes["output0"] = ({0: "batch"} if dynamic_batch else {}) | ({2: "anchors"} if dynamic_hw else {})
        for name in raw:
            axes[name] = ({0: "batch"} if dynamic_batch else {}) | ({2: "grid_h", 3: "grid_w"} if dynamic_hw else {})
        if nms and dynamic_batch:
            axes.update({n: {0: "batch"} for n in NMS_OUTPUTS})
    checks = [pattern_images(check_batch, h, w), _noise_images(check_batch, h, w)]
    if dynamic_hw:  # a second shape proves that height and width really are free
        checks.append(_noise_images(check_batch, h + stride, max(stride, w - stride), seed=1))
    metadata = {
        "imgsz": json.dumps([h, w]),
        "stride": str(stride),
        "input_size": str(model_input_size(ref, default=max(h, w))),  # the model's own size (zoo.core.sizes)
        "names": json.dumps({i: n for i, n in enumerate(names)}),
        "dynamic_hw": json.dumps(dynamic_hw),
        "nms": json.dumps(asdict(nms) if nms else None),
    }
    return GraphSpec(reference=ref, module=_DetectorGraph(deploy, nms, with_raw).eval(),
                     example=_noise_images(trace_batch, h, w), input_name="images", trace_outputs=trace_outputs,
                     saved_outputs=saved, tail_inputs=raw, main_output="output0", dynamic_axes=axes,
                     check_inputs=checks, metadata=metadata, normalise=normalised_diff,
                     output_check=_nms_check(nms) if nms else None, options={"nms": nms})
