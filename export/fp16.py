"""The ``gpu`` target: float16 weights and activations for onnxruntime's CUDA execution provider.

The float32 graph is converted with onnxruntime's own converter (``onnxruntime.transformers.float16``,
shipped with onnxruntime, so no extra dependency) rather than by tracing a ``.half()`` model: tracing
in half precision fails on the CPU (LeYOLO's anchor ``arange`` has no float16 ONNX ``Range``), and the
converter keeps what must stay float32 in float32 with explicit casts:

* graph inputs/outputs stay float32 by default (``keep_io_types``), so callers feed the same tensors as
  for the cpu file; ``io_fp16=True`` makes them float16 for pipelines that are fp16 end to end;
* ops without fp16 kernels or that need the range (its default block list: ``NonMaxSuppression``,
  ``TopK``, ``Range``, ``CumSum``, ...) stay float32;
* the detector's decode tail (DFL softmax, anchors, box arithmetic up to 640+ px, where fp16 steps are
  0.5 px) stays float32: it is a few thousand FLOPs against the network's billions.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence

import onnx

logger = logging.getLogger(__name__)


def to_float16(model: onnx.ModelProto, *, keep_float32_nodes: Sequence[str] = (), io_fp16: bool = False
               ) -> onnx.ModelProto:
    """Convert a float32 graph to float16 (see module docstring) and return the new model.

    Args:
        model: float32 ONNX model (not modified).
        keep_float32_nodes: node names that stay float32 (the decode tail).
        io_fp16: make graph inputs and outputs float16 too (default: float32 with casts at the ends).
    """
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16

    converted = convert_float_to_float16(
        onnx.ModelProto.FromString(model.SerializeToString()),  # the converter edits its argument
        keep_io_types=not io_fp16,
        op_block_list=list(DEFAULT_OP_BLOCK_LIST),
        node_block_list=list(keep_float32_nodes),
        disable_shape_infer=False,
    )
    kept = sum(1 for n in converted.graph.node if n.name in set(keep_float32_nodes))
    logger.info("float16 graph: %d nodes, %d kept in float32", len(converted.graph.node), kept)
    return converted
