"""cpu target: every LeYOLO model and the PI-GPT tiny variants export and match PyTorch within 1e-4.

Models are untrained, so BatchNorm statistics, learnable temperatures and FFN scalings are randomised
first: with their initial values, folding them would be a no-op and a folding bug could not show.
Expected numbers are PyTorch's own outputs on the *unfused* model, computed here independently of the
exporter's parity code.
"""
from __future__ import annotations

import inspect
import json
from pathlib import Path

import onnx
import pytest
import torch
from zoo.export import OnnxModel, ParityError, export_onnx
from zoo.export.trace import EXPORTER, _exporter_kwargs

import zoo
from zoo.runtime.metadata import opset_of

IMGSZ = 64  # smallest input with all three levels (8x8, 4x4, 2x2): keeps the suite fast
TOL = 1e-4
PI_REPRESENTATIVE = ("sm-ln-g", "sm-r", "sm-sn-ffn", "sm-t-scfuffn")  # LN+GELU, LN-free, spectral norm, temp+fused


def _randomise(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Seeded non-trivial BatchNorm statistics/affines and small perturbations of scalar parameters."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                c = m.num_features
                m.running_mean.copy_(torch.randn(c, generator=gen) * 0.2)
                m.running_var.copy_(torch.rand(c, generator=gen) * 1.5 + 0.25)
                m.weight.copy_(torch.rand(c, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(c, generator=gen) * 0.1)
        for name, p in model.named_parameters():
            if p.dim() <= 2 and ("temperature" in name or name.endswith(("alpha", "beta"))):
                p.mul_(1 + 0.2 * torch.rand(p.shape, generator=gen))
    return model.eval()


def _normalised_diff(got: torch.Tensor, ref: torch.Tensor, side: int) -> float:
    """Max abs diff with box rows in units of the input side (see zoo.export.parity)."""
    d = (got - ref).abs()
    return max(float(d[:, :4].max()) / side, float(d[:, 4:].max()))


def test_torchscript_exporter_is_used_with_dynamo_off():
    # torch 2.9+ defaults to the dynamo exporter, whose opset-17 LeYOLO graph onnxruntime refuses to load.
    assert EXPORTER == "torchscript"
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        assert _exporter_kwargs() == {"dynamo": False}
    else:  # torch 2.4: the TorchScript exporter is the only one
        assert _exporter_kwargs() == {}


@pytest.mark.parametrize("name", zoo.list_models("leyolo-*"))
def test_every_leyolo_model_exports_for_cpu_within_1e_4(name, tmp_path):
    model = _randomise(zoo.create_model(name))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = export_onnx(model, "cpu", imgsz=IMGSZ, out=tmp_path / f"{name}.onnx", simplify=False)

    assert result.parity.passed and result.parity.value <= TOL
    assert result.inputs == ["batch", 3, IMGSZ, IMGSZ] and result.outputs == ["output0"]
    assert not model.is_fused and all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    file = onnx.load(str(result.path))
    assert opset_of(file) == 17
    assert not any(n.op_type == "BatchNormalization" for n in file.graph.node)  # every BN folded

    ort = OnnxModel(result.path)
    x = torch.rand(3, 3, IMGSZ, IMGSZ, generator=torch.Generator().manual_seed(5))  # batch 3: never traced
    with torch.no_grad():
        ref = model(x)
    assert _normalised_diff(ort(x), ref, IMGSZ) <= TOL
    assert ort.names == dict(enumerate(model.names)) and ort.stride == 32 and ort.imgsz == (IMGSZ, IMGSZ)
    assert ort.metadata["model"] == name and ort.metadata["target"] == "cpu" and ort.metadata["batch"] == "dynamic"
    assert ort.metadata["parity"]["passed"] is True and ort.metadata["exporter"] == "torchscript"

    # A fixed-size file takes smaller "rect" letterboxes, padded at the right with letterbox grey, which
    # leaves box coordinates where they were; larger inputs get a clear error.
    x = torch.rand(1, 3, IMGSZ, 32, generator=torch.Generator().manual_seed(4))
    padded = torch.full((1, 3, IMGSZ, IMGSZ), 114 / 255)
    padded[..., :32] = x
    with torch.no_grad():
        ref = model(padded)
    assert _normalised_diff(ort(x), ref, IMGSZ) <= TOL
    with pytest.raises(ValueError, match="fixed-size images.*--dynamic-hw"):
        ort(torch.rand(1, 3, IMGSZ + 32, IMGSZ))


@pytest.mark.parametrize("variant", [
    v if v in PI_REPRESENTATIVE else pytest.param(v, marks=pytest.mark.slow)
    for v in (n.removeprefix("pi-gpt2-tiny-") for n in zoo.list_models("pi-gpt2-tiny-*"))
])
def test_pi_tiny_variants_export_full_sequence_logits_within_1e_4(variant, tmp_path):
    model = _randomise(zoo.create_model(f"pi-gpt2-tiny-{variant}"))
    result = export_onnx(model, "cpu", out=tmp_path / "lm.onnx", simplify=False)
    assert result.parity.passed and result.parity.value <= TOL
    T = model.config.context_length
    assert result.inputs == ["batch", T] and result.outputs == ["logits"]

    ort = OnnxModel(result.path)
    tokens = torch.randint(0, model.config.vocab_size, (3, T), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        ref = model(tokens)  # the unfolded model
    got = ort(tokens)
    assert got.shape == (3, T, model.config.vocab_size)
    assert float((got - ref).abs().max()) <= TOL
    assert ort.task == "language-modeling" and ort.seq_len == T


def test_onnx_model_plugs_into_the_lm_evaluator(tmp_path):
    from zoo.eval.lm import evaluate_perplexity

    model = _randomise(zoo.create_model("pi-gpt2-tiny-sm-ln-g"))
    path = export_onnx(model, "cpu", seq_len=32, out=tmp_path / "lm.onnx", simplify=False).path
    chunks = torch.randint(0, 256, (6, 32), generator=torch.Generator().manual_seed(1))
    ours = evaluate_perplexity(OnnxModel(path), chunks, batch_size=4)
    ref = evaluate_perplexity(model, chunks, batch_size=4)
    assert ours.tokens == ref.tokens == 6 * 31
    assert ours.perplexity == pytest.approx(ref.perplexity, rel=1e-5)


def test_failing_parity_check_writes_nothing_and_keeps_the_old_file(tmp_path):
    model = zoo.create_model("pi-gpt2-tiny-sm-r")
    out = tmp_path / "lm.onnx"
    with pytest.raises(ParityError, match="nothing was written"):
        export_onnx(model, "cpu", out=out, tolerance=1e-12, simplify=False)  # float32 rounding alone fails it
    assert list(tmp_path.iterdir()) == []  # no file, no temporary left behind

    out.write_bytes(b"previous good export")
    with pytest.raises(ParityError):
        export_onnx(model, "cpu", out=out, tolerance=1e-12, simplify=False)
    assert out.read_bytes() == b"previous good export" and len(list(tmp_path.iterdir())) == 1


def test_fixed_batch_size_is_kept_in_the_graph(tmp_path):
    model = zoo.create_model("pi-gpt2-tiny-sm-ln-g")
    result = export_onnx(model, "cpu", batch=2, seq_len=16, out=tmp_path / "b2.onnx", simplify=False)
    assert result.inputs == [2, 16] and result.parity.inputs == [[2, 16], [2, 16]]
    assert OnnxModel(result.path).metadata["batch"] == "2"
    with pytest.raises(ValueError, match="expects tokens of shape 2x16"):
        OnnxModel(result.path)(torch.zeros(3, 16, dtype=torch.long))


def test_free_height_width_accepts_any_multiple_of_32(tmp_path):
    model = _randomise(zoo.create_model("leyolo-nano"))
    free = export_onnx(model, "cpu", imgsz=IMGSZ, dynamic_hw=True, out=tmp_path / "hw.onnx", simplify=False)
    assert free.inputs == ["batch", 3, "height", "width"] and free.parity.inputs[-1] == [2, 3, 96, 32]
    x = torch.rand(1, 3, 96, 160, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ref = model(x)
    got = OnnxModel(free.path)(x)
    assert got.shape == ref.shape == (1, 84, 12 * 20 + 6 * 10 + 3 * 5)
    assert _normalised_diff(got, ref, 160) <= TOL


@pytest.mark.skipif(not __import__("importlib").util.find_spec("onnxslim"), reason="onnxslim not installed")
def test_cpu_default_simplifies_with_onnxslim_and_keeps_parity(tmp_path):
    model = _randomise(zoo.create_model("pi-gpt2-tiny-sm-ln-g"))
    plain = export_onnx(model, "cpu", seq_len=16, out=tmp_path / "plain.onnx", simplify=False)
    slim = export_onnx(model, "cpu", seq_len=16, out=tmp_path / "slim.onnx")  # simplify=None: when installed
    n_plain = len(onnx.load(str(plain.path)).graph.node)
    n_slim = len(onnx.load(str(slim.path)).graph.node)
    assert n_slim < n_plain and slim.parity.passed and slim.parity.value <= TOL
    assert json.loads(json.dumps(slim.to_dict()))["path"] == str(Path(slim.path))
