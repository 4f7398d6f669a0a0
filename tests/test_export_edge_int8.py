"""The edge target runs integer kernels (issue 14): onnxruntime fuses the QDQ graph into one integer chain."""
from __future__ import annotations

import collections

import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper

import zoo
from zoo.export import export_onnx
from zoo.export.quantize import SILU_FLOOR, silu_inputs


def _optimized_ops(path, tmp_path) -> collections.Counter:
    """Op counts of the graph onnxruntime's CPU provider actually runs (after its QDQ fusions)."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED  # QDQ fusions, no layout
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return collections.Counter(n.op_type for n in onnx.load(str(tmp_path / "optimized.onnx")).graph.node)


def test_edge_nano_runs_as_an_integer_chain_through_every_silu(tmp_path):
    torch.manual_seed(0)
    model = zoo.create_model("leyolo-nano").eval()
    out = tmp_path / "nano-edge.onnx"
    export_onnx(model, "edge", imgsz=64, batch=1, out=out, check=False, simplify=False,
                calibration=[torch.rand(64, 64, 3).mul(255).byte().numpy() for _ in range(2)], calibration_size=2)
    ops = _optimized_ops(out, tmp_path)
    # LeYOLO-Nano: 101 convolutions (spec per-layer table); the deploy graph writes the DFL's fixed 1x1 conv as
    # explicit arithmetic (models/leyolo/head.py), leaving 100, of which the head's last 3 x 3 (box/class
    # logits) stay float on purpose (zoo.export.quantize); every other one must run as QLinearConv.
    assert ops["Conv"] <= 9 and ops["QLinearConv"] >= 91 and ops["Conv"] + ops["QLinearConv"] == 100
    # SiLU = Sigmoid * x in integer (lookup table + integer Mul), not dequantized to float between two convs.
    assert ops["QLinearSigmoid"] >= 60 and ops["QLinearMul"] >= 60


def test_silu_inputs_finds_conv_outputs_that_feed_x_times_sigmoid_x():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 4, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 4, 4])
    w = helper.make_tensor("w", TensorProto.FLOAT, [1, 1, 1, 1], [1.0])
    nodes = [helper.make_node("Conv", ["x", "w"], ["c1"], name="silu_conv"),
             helper.make_node("Sigmoid", ["c1"], ["s1"]), helper.make_node("Mul", ["c1", "s1"], ["a1"]),
             helper.make_node("Conv", ["a1", "w"], ["c2"], name="relu_conv"), helper.make_node("Relu", ["c2"], ["y"])]
    graph = helper.make_graph(nodes, "g", [x], [y], [w])
    assert silu_inputs(helper.make_model(graph)) == ["c1"]
    assert SILU_FLOOR == pytest.approx(-6.0)  # silu(-6) = -6 / (1 + e^6) = -0.0148: flat below it


def _near_constant_conv() -> onnx.ModelProto:
    """x -> Conv (weights 1e-7, bias 0.5) -> Sigmoid * x: the conv output is 0.5 to within a few float32 ulps."""
    w = helper.make_tensor("w", TensorProto.FLOAT, [4, 3, 1, 1], [1e-7] * 12)
    b = helper.make_tensor("b", TensorProto.FLOAT, [4], [0.5] * 4)
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv"),
             helper.make_node("Sigmoid", ["c"], ["s"], name="sig"), helper.make_node("Mul", ["c", "s"], ["y"], name="mul")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])], [w, b])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_percentile_calibration_falls_back_to_minmax_on_a_constant_tensor_and_says_so():
    """numpy cannot make 2048 histogram bins over a range of a few ulps; the export must not die of it."""
    from zoo.export.quantize import quantize_int8

    model = _near_constant_conv()
    batches = [torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(i)).numpy() for i in range(2)]
    notes: list[str] = []
    quantized = quantize_int8(model, batches, input_name="x", notes=notes)
    assert len(notes) == 1 and "calibrated with minmax instead" in notes[0]
    assert any(n.op_type == "QuantizeLinear" for n in quantized.graph.node)
    session = ort.InferenceSession(quantized.SerializeToString(), providers=["CPUExecutionProvider"])
    y = session.run(None, {"x": batches[0]})[0]
    assert abs(float(y.mean()) - 0.5 / (1 + 2.718281828459045 ** -0.5)) < 0.01  # silu(0.5) = 0.311
