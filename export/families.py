"""What each task exports: the traced module, its inputs/outputs, fixed check inputs and metadata.

The exporter itself is task-agnostic; this module is the one place that knows that a detector takes
(B, 3, H, W) images in [0, 1] and returns the decoded (B, 4 + nc, A) tensor (optionally followed by NMS),
and that a language model takes (B, T) int64 tokens and returns (B, T, V) logits.

The exported network is the *inference* form of the model, as a user would deploy it: for LeYOLO a
copy with every BatchNorm folded into its conv (``fuse()`` plus the ``mn_conv``/projection BatchNorms
that ``fuse()`` keeps for FLOP-count fidelity), for PI-GPT ``fold()`` (weight/spectral norm,
temperatures and identity FFNs written into plain weights). Parity is measured against the caller's
own model, so fusing and folding are checked too. The caller's model is never modified.
"""
from __future__ import annotations

import contextlib
import copy
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from zoo.export.errors import ExportError
from zoo.export.nms import OUTPUT_NAMES as NMS_OUTPUTS
from zoo.export.nms import nms_padded

logger = logging.getLogger(__name__)

DETECTION = "detection"
LANGUAGE_MODELING = "language-modeling"
TASKS = (DETECTION, LANGUAGE_MODELING)


@dataclass(frozen=True)
class NMSSettings:
    """Post-processing baked into an end-to-end detector graph (the defaults of ``zoo.predict``)."""

    conf: float = 0.25
    iou: float = 0.7
    max_det: int = 300


@dataclass
class GraphSpec:
    """Everything the exporter needs to trace, check and describe one model.

    Attributes:
        task: ``detection`` or ``language-modeling``.
        reference: the model parity is measured against: the caller's model (see ``reference_model``),
            run in eval mode.
        module: what is traced: the inference copy (fused and BatchNorm-folded LeYOLO, folded PI-GPT)
            plus export-only wrapping (extra outputs, NMS).
        example: tracing input, batch 1 (or the fixed batch).
        input_name: the graph input's name (``images`` or ``tokens``).
        trace_outputs: every traced output, in order.
        saved_outputs: the outputs kept in the written file.
        tail_inputs: tensors whose consumers form the decode "tail" kept in float32 by gpu/edge
            (the raw head maps: DFL softmax, anchors and box arithmetic lose pixels in fp16/int8).
        main_output: the output compared with ``reference(x)``: ``output0`` or ``logits``.
        dynamic_axes: tracer dynamic axes.
        check_inputs: fixed inputs for the parity check (a batch size other than the traced one when
            the batch is dynamic, so a wrongly static axis fails the check).
        metadata: task-specific metadata (JSON-encoded strings).
        nms: the baked-in NMS settings, or None.
    """

    task: str
    reference: nn.Module
    module: nn.Module
    example: Tensor
    input_name: str
    trace_outputs: list[str]
    saved_outputs: list[str]
    tail_inputs: list[str]
    main_output: str
    dynamic_axes: dict[str, dict[int, str]]
    check_inputs: list[Tensor]
    metadata: dict[str, str] = field(default_factory=dict)
    nms: NMSSettings | None = None

    @property
    def check_only_outputs(self) -> list[str]:
        return [n for n in self.trace_outputs if n not in self.saved_outputs]


def task_of(model: nn.Module) -> str:
    """``detection`` or ``language-modeling``, from the registry card of the model (or its type)."""
    name = getattr(model, "model_name", None)
    if name:
        from zoo.core.registry import get_card

        return get_card(name).task
    if hasattr(model, "head") and hasattr(model, "stride"):
        return DETECTION
    if hasattr(model, "config") and hasattr(model.config, "vocab_size"):
        return LANGUAGE_MODELING
    raise ExportError(f"Cannot tell whether {type(model).__name__} is a detector or a language model; export a "
                      "registry model (zoo.create_model) or set model.model_name to its registry name.")


def inference_copy(model: nn.Module) -> nn.Module:
    """The deployable float32 CPU form of ``model``: ``fold()`` (PI-GPT) or a fully folded copy (LeYOLO)."""
    if hasattr(model, "fold"):
        return model.fold().cpu().float().eval()  # fold() already returns a new, eval-mode model
    ref = copy.deepcopy(model).cpu().float().eval()
    if hasattr(ref, "fuse"):
        ref = ref.fuse()
    return fold_all_batchnorms(ref).requires_grad_(False)


def reference_model(model: nn.Module) -> nn.Module:
    """The model parity is measured against: the caller's own model when it is on the CPU in float32
    (so the check covers fusing and folding too), else a CPU float32 copy of it."""
    params = list(model.parameters())
    if all(p.device.type == "cpu" and p.dtype == torch.float32 for p in params):
        return model
    return copy.deepcopy(model).cpu().float()


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Run ``model`` in eval mode and restore its train/eval state afterwards."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


@torch.no_grad()
def fold_all_batchnorms(model: nn.Module) -> nn.Module:
    """Fold, in place, every BatchNorm that directly follows a conv into it; return ``model``.

    LeYOLO's ``fuse()`` folds only the stock ``Conv`` modules, like the official code, so that FLOP
    counts match the paper; the ``mn_conv`` and bottleneck-projection BatchNorms stay. A deployed graph
    wants them all folded: fewer ops, and an int8 quantizer then sees the conv's real output range
    instead of the pre-BatchNorm one. Only pairs whose order of execution is certain are folded:
    consecutive children of an ``nn.Sequential`` and ``MnConv``'s ``c`` -> ``bn``. The parity check
    compares the export against the caller's unfused model, so the folding is checked too.
    """
    from zoo.models.leyolo.blocks import MnConv, fuse_conv_and_bn

    for module in model.modules():
        if isinstance(module, MnConv) and isinstance(module.bn, nn.BatchNorm2d):
            module.c, module.bn = fuse_conv_and_bn(module.c, module.bn), nn.Identity()
        elif isinstance(module, nn.Sequential):
            for i in range(len(module) - 1):
                conv, bn = module[i], module[i + 1]
                if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                    module[i], module[i + 1] = fuse_conv_and_bn(conv, bn), nn.Identity()
    return model.eval()


# --------------------------------------------------------------------------------------------------------
# Detection
# --------------------------------------------------------------------------------------------------------
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
    import inspect

    return "return_raw" in inspect.signature(model.forward).parameters


def _pattern_images(batch: int, h: int, w: int) -> Tensor:
    """The goldens' deterministic input: pixel n = (n mod 251) / 250, varied per image by an offset."""
    n = 3 * h * w
    base = torch.arange(n, dtype=torch.int64)
    return torch.stack([((base + 97 * i) % 251).float().div(250.0).view(3, h, w) for i in range(batch)])


def _noise_images(batch: int, h: int, w: int, seed: int = 0) -> Tensor:
    return torch.rand(batch, 3, h, w, generator=torch.Generator().manual_seed(seed))


def detection_spec(model: nn.Module, *, imgsz: int | tuple[int, int] | None, batch: int | str,
                   dynamic_hw: bool, nms: NMSSettings | None) -> GraphSpec:
    """The ``GraphSpec`` of a detector (see module docstring)."""
    ref, deploy = reference_model(model), inference_copy(model)
    stride = int(torch.as_tensor(getattr(ref, "stride", 32)).max())
    size = imgsz if imgsz is not None else getattr(ref, "input_size", 640)
    h, w = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    if h < stride or w < stride or h % stride or w % stride:
        raise ExportError(f"imgsz={size!r} must be a positive multiple of the model stride {stride} (e.g. "
                          f"{max(stride, round(h / stride) * stride)}).")
    names = list(getattr(ref, "names", []) or [])
    dynamic_batch = batch == "dynamic"
    trace_batch = 1 if dynamic_batch else int(batch)
    check_batch = 2 if dynamic_batch else trace_batch
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
    checks = [_pattern_images(check_batch, h, w), _noise_images(check_batch, h, w)]
    if dynamic_hw:  # a second shape proves that height and width really are free
        checks.append(_noise_images(check_batch, h + stride, max(stride, w - stride), seed=1))
    metadata = {
        "imgsz": json.dumps([h, w]),
        "stride": str(stride),
        "names": json.dumps({i: n for i, n in enumerate(names)}),
        "dynamic_hw": json.dumps(dynamic_hw),
        "nms": json.dumps(nms.__dict__ if nms else None),
    }
    return GraphSpec(task=DETECTION, reference=ref, module=_DetectorGraph(deploy, nms, with_raw).eval(),
                     example=_noise_images(trace_batch, h, w), input_name="images", trace_outputs=trace_outputs,
                     saved_outputs=saved, tail_inputs=raw, main_output="output0", dynamic_axes=axes,
                     check_inputs=checks, metadata=metadata, nms=nms)


# --------------------------------------------------------------------------------------------------------
# Language models
# --------------------------------------------------------------------------------------------------------
class _LogitsGraph(nn.Module):
    """Tokens (B, T) -> logits (B, T, V) as one plain tensor (no ``PIOutput``, no attention maps)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, tokens: Tensor) -> Tensor:
        out = self.model(tokens)
        return out.logits if hasattr(out, "logits") else out


def lm_spec(model: nn.Module, *, seq_len: int | None, batch: int | str) -> GraphSpec:
    """The ``GraphSpec`` of a language model: full-sequence logits for a fixed T."""
    ref, deploy = reference_model(model), inference_copy(model)
    cfg = deploy.config
    T = int(seq_len) if seq_len is not None else int(cfg.context_length)
    limit = min(int(cfg.n_pos), int(cfg.context_length)) if cfg.attn_temperature != "none" else int(cfg.n_pos)
    if T < 2 or T > limit:
        raise ExportError(f"seq_len={T} must be between 2 and {limit} for {getattr(model, 'model_name', 'this model')}"
                          "; build it with a larger context_length for longer sequences.")
    dynamic_batch = batch == "dynamic"
    trace_batch = 1 if dynamic_batch else int(batch)
    check_batch = 2 if dynamic_batch else trace_batch
    gen = torch.Generator().manual_seed(0)
    checks = [torch.randint(0, cfg.vocab_size, (check_batch, T), generator=gen),
              torch.arange(check_batch * T).remainder(cfg.vocab_size).view(check_batch, T)]
    axes = {"tokens": {0: "batch"}, "logits": {0: "batch"}} if dynamic_batch else {}
    metadata = {"seq_len": str(T), "vocab_size": str(cfg.vocab_size)}
    return GraphSpec(task=LANGUAGE_MODELING, reference=ref, module=_LogitsGraph(deploy).eval(),
                     example=torch.zeros(trace_batch, T, dtype=torch.int64), input_name="tokens",
                     trace_outputs=["logits"], saved_outputs=["logits"], tail_inputs=[], main_output="logits",
                     dynamic_axes=axes, check_inputs=checks, metadata=metadata)


def graph_spec(model: nn.Module, task: str, **kw: Any) -> GraphSpec:
    """Dispatch to :func:`detection_spec` or :func:`lm_spec`, rejecting options of the other task."""
    if task == DETECTION:
        if kw.get("seq_len") is not None:
            raise ExportError("seq_len is for language models; a detector takes imgsz.")
        return detection_spec(model, imgsz=kw.get("imgsz"), batch=kw["batch"], dynamic_hw=kw.get("dynamic_hw", False),
                              nms=kw.get("nms"))
    if task == LANGUAGE_MODELING:
        if kw.get("imgsz") is not None or kw.get("nms") is not None or kw.get("dynamic_hw"):
            raise ExportError("imgsz, dynamic_hw and nms are for detectors; a language model takes seq_len.")
        return lm_spec(model, seq_len=kw.get("seq_len"), batch=kw["batch"])
    raise ExportError(f"Cannot export task {task!r}; effzoo exports {', '.join(TASKS)} models.")
