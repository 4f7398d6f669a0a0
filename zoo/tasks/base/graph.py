"""The export contract: what a task slice hands the (task-agnostic) ONNX exporter.

Each slice builds a :class:`GraphSpec` for its models (``zoo.tasks.detection.export_graph``,
``zoo.tasks.language.export_graph``): the module to trace, its input and output names, fixed check inputs,
the metadata the file carries, and the two task-specific parts of the parity check (how a difference is
measured, and any extra proof such as an end-to-end NMS). The exporter (``zoo.export``) only traces,
converts, checks and writes.

The exported network is the *inference* form of the model, as a user would deploy it: the family's
``deploy_copy()`` (LeYOLO: every BatchNorm folded) or ``fold()`` (PI-GPT: weight/spectral norm,
temperatures and identity FFNs written into plain weights). Parity is measured against the caller's own
model, so fusing and folding are checked too. The caller's model is never modified.
"""
from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn


@dataclass
class GraphSpec:
    """Everything the exporter needs to trace, check and describe one model.

    Attributes:
        reference: the model parity is measured against: the caller's model (see ``reference_model``),
            run in eval mode.
        module: what is traced: the inference copy plus export-only wrapping (extra outputs, NMS).
        example: tracing input, batch 1 (or the fixed batch).
        input_name: the graph input's name (``images`` or ``tokens``).
        trace_outputs: every traced output, in order.
        saved_outputs: the outputs kept in the written file.
        tail_inputs: tensors whose consumers form the decode "tail" kept in float32 by gpu/edge
            (a detector's raw head maps: DFL softmax, anchors and box arithmetic lose pixels in fp16/int8).
        main_output: the output compared with ``reference(x)``.
        dynamic_axes: tracer dynamic axes.
        check_inputs: fixed inputs for the parity check (a batch size other than the traced one when
            the batch is dynamic, so a wrongly static axis fails the check).
        metadata: task-specific metadata (JSON-encoded strings).
        normalise: ``(x, |got - ref|, ref) -> diff`` in the units the tolerance is stated in (default: as is).
        output_check: ``(all outputs, main output) -> bool``: an extra proof the file must pass (the NMS of
            an end-to-end detector equals ``non_max_suppression`` applied outside), or None.
        options: what was baked in (e.g. NMS settings), for the caller's records.
    """

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
    normalise: Callable[[Tensor, Tensor, Tensor], Tensor] | None = None
    output_check: Callable[[dict[str, Any], Tensor], bool] | None = None
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def check_only_outputs(self) -> list[str]:
        return [n for n in self.trace_outputs if n not in self.saved_outputs]


def inference_copy(model: nn.Module) -> nn.Module:
    """The deployable float32 CPU form of ``model``: the family's ``fold()`` / ``deploy_copy()``, else a copy."""
    if hasattr(model, "fold"):
        return model.fold().cpu().float().eval()  # fold() already returns a new, eval-mode model
    if hasattr(model, "deploy_copy"):
        return model.deploy_copy()
    return copy.deepcopy(model).cpu().float().eval().requires_grad_(False)


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


def batch_sizes(batch: int | str) -> tuple[bool, int, int]:
    """(dynamic?, batch traced with, batch checked with) for ``batch`` = "dynamic" or an int.

    A dynamic batch is traced at 1 and checked at 2, so an axis the tracer froze by mistake fails the check.
    """
    dynamic = batch == "dynamic"
    trace = 1 if dynamic else int(batch)
    return dynamic, trace, 2 if dynamic else trace
