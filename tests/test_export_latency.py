"""The latency protocol (zoo.export.latency): warm-up, interleaved rotating blocks, medians of block means.

No timing is asserted (timings belong in benchmarks/); the protocol is checked with a fake clock.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from zoo.export import latency


def test_blocks_interleave_in_rotating_order_and_report_block_medians(monkeypatch):
    clock = {"t": 0.0}
    monkeypatch.setattr(latency.time, "perf_counter", lambda: clock["t"])
    calls: list[str] = []

    def candidate(name: str, ms: float):
        def run() -> None:
            calls.append(name)
            clock["t"] += ms / 1e3
        return run

    stats = latency.interleaved_latency({"a": candidate("a", 2.0), "b": candidate("b", 5.0), "c": candidate("c", 1.0)},
                                        blocks=3, calls_per_block=2, warmup=1)
    assert calls[:3] == ["a", "b", "c"]  # one warm-up call each
    timed = calls[3:]
    assert timed == ["a"] * 2 + ["b"] * 2 + ["c"] * 2 + ["b"] * 2 + ["c"] * 2 + ["a"] * 2 + \
        ["c"] * 2 + ["a"] * 2 + ["b"] * 2  # each block starts one candidate later
    assert stats["a"].median_ms == pytest.approx(2.0) and stats["b"].median_ms == pytest.approx(5.0)
    assert stats["c"].q1_ms == pytest.approx(1.0) and stats["c"].blocks == 3 and stats["c"].calls_per_block == 2
    with pytest.raises(ValueError, match="blocks and calls_per_block"):
        latency.interleaved_latency({"a": candidate("a", 1.0)}, blocks=0)


def test_runners_call_the_model_and_the_onnx_session(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(tmp_path / "r.onnx"))
    out = latency.ort_runner(tmp_path / "r.onnx", torch.tensor([[-1.0, 3.0]]), threads=1)()
    assert np.array_equal(out[0], [[0.0, 3.0]])
    model = torch.nn.ReLU()
    assert torch.equal(latency.torch_runner(model, torch.tensor([-2.0, 1.0]))(), torch.tensor([0.0, 1.0]))
    assert latency.default_threads() >= 1


def test_quartiles_stay_between_the_block_samples(monkeypatch):
    """Two blocks of 4 and 5 ms: quartiles by linear interpolation between them (4.25, 4.75); the default
    'exclusive' method extrapolated to 3.75 / 5.25, and to a negative q1 for spread-out samples."""
    clock, times = {"t": 0.0}, iter([1.0, 4.0, 5.0])  # warm-up, block 1, block 2
    monkeypatch.setattr(latency.time, "perf_counter", lambda: clock["t"])

    def run() -> None:
        clock["t"] += next(times) / 1e3

    s = latency.interleaved_latency({"a": run}, blocks=2, calls_per_block=1, warmup=1)["a"]
    assert (s.q1_ms, s.median_ms, s.q3_ms) == (pytest.approx(4.25), pytest.approx(4.5), pytest.approx(4.75))
