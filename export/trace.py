"""PyTorch -> ONNX graph, with the TorchScript exporter (``dynamo=False``): a deliberate choice.

torch 2.9+ defaults ``torch.onnx.export`` to the dynamo (``torch.export``) exporter, which needs
``onnxscript``. We pass ``dynamo=False`` and use the TorchScript tracer instead, because on the torch in
our range (``torch>=2.4,<2.15``, checked on 2.14.1 / onnxscript 0.7.2):

* the dynamo exporter has no opset-17 implementation: it exports opset 18 and down-converts, and the
  down-converted LeYOLO graph is invalid (``Split`` keeps its opset-18 ``num_outputs`` attribute, so
  onnxruntime refuses to load it). Opset 17 is what older runtimes and edge toolchains accept;
* it took ~125 s for LeYOLO-Nano (its non-strict ``torch.export`` fails on the head, then a strict
  retry) against ~4 s for the tracer, which matters for a test suite that exports every registry model;
* the tracer gives a readable, constant-folded graph at any opset >= 17, and custom ONNX ops (our
  end-to-end ``NonMaxSuppression``) are a ``symbolic`` staticmethod away;
* torch 2.4 has no ``dynamo`` keyword at all (the tracer is its only exporter), so the same call
  works across the whole supported range.

The tracer records one execution: Python control flow and shape checks become constants. That is fine
for our models (static graphs; the batch, and optionally height/width, are made dynamic through
``dynamic_axes``) and is why every export is followed by a parity check on a *different* batch size.
torch warns that the TorchScript exporter is deprecated; when ``pyproject.toml`` admits a torch without
it, this module is the one place to change (tests/test_export_cpu.py pins the behaviour).
"""
from __future__ import annotations

import inspect
import io
import logging
import warnings
from collections.abc import Mapping, Sequence

import onnx
import torch
from torch import nn

from zoo.core.errors import ExportError
from zoo.runtime.metadata import MIN_OPSET

logger = logging.getLogger(__name__)

EXPORTER = "torchscript"  # see the module docstring; recorded in every file's metadata
DEFAULT_OPSET = 17


def max_opset() -> int:
    """Highest opset that both the TorchScript exporter and the installed ``onnx`` know."""
    try:  # private constant, present from torch 1.x to 2.14; 20 is its value across our range
        from torch.onnx._constants import ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET as torch_max
    except ImportError:  # pragma: no cover - depends on the torch build
        torch_max = 20
    return int(min(torch_max, onnx.defs.onnx_opset_version()))


def check_opset(opset: int) -> int:
    """Validate a requested opset; raises ``ExportError`` naming the supported range."""
    hi = max_opset()
    if isinstance(opset, bool) or not isinstance(opset, int) or not MIN_OPSET <= opset <= hi:
        raise ExportError(f"opset={opset!r} is not supported: choose an opset from {MIN_OPSET} to {hi} "
                          f"(default {DEFAULT_OPSET}).")
    return opset


def _exporter_kwargs() -> dict[str, object]:
    """``dynamo=False`` where torch has the switch (2.5+); torch 2.4 only has the TorchScript exporter."""
    return {"dynamo": False} if "dynamo" in inspect.signature(torch.onnx.export).parameters else {}


def trace_to_onnx(
    module: nn.Module,
    example: torch.Tensor,
    *,
    input_names: Sequence[str],
    output_names: Sequence[str],
    dynamic_axes: Mapping[str, Mapping[int, str]],
    opset: int = DEFAULT_OPSET,
) -> onnx.ModelProto:
    """Trace ``module`` on ``example`` and return the ONNX model (in memory, constant-folded).

    Args:
        module: an eval-mode module; it is not modified (the exporter's train/eval toggling is undone).
        example: the tracing input, e.g. (1, 3, H, W) float or (1, T) int64.
        input_names / output_names: graph input and output names, in order.
        dynamic_axes: ``{tensor name: {axis: symbolic name}}`` for axes that stay symbolic.
        opset: default-domain opset (>= 17).

    Raises:
        ExportError: the tracer could not convert the module (message names the failing op).
    """
    check_opset(opset)
    was_training = module.training
    module.eval()
    buffer = io.BytesIO()
    try:
        with warnings.catch_warnings():
            # The tracer's "converting a tensor to a Python int/bool" warnings come from input-shape checks
            # that are constant for the traced shapes, and the deprecation notice is documented above.
            warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
            warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
            warnings.filterwarnings("ignore", message=".*feature will be removed.*")
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            # Our advanced indexing (NMS rows) never uses negative indices, the case this warns about.
            warnings.filterwarnings("ignore", message=".*advanced indexing.*")
            with torch.no_grad():
                torch.onnx.export(module, (example,), buffer, input_names=list(input_names),
                                  output_names=list(output_names), dynamic_axes={k: dict(v) for k, v in
                                                                                 dynamic_axes.items()},
                                  opset_version=opset, do_constant_folding=True, **_exporter_kwargs())
    except (RuntimeError, torch.onnx.errors.OnnxExporterError) as err:  # type: ignore[attr-defined]
        first = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
        raise ExportError(f"The TorchScript exporter could not convert {type(module).__name__} at opset {opset}: "
                          f"{first}") from err
    finally:
        module.train(was_training)
    model = onnx.load_from_string(buffer.getvalue())
    logger.debug("traced %s: %d nodes, opset %d", type(module).__name__, len(model.graph.node), opset)
    return model
