"""The OpenVINO target and runtime (issue 14): an IR that computes what PyTorch computes, served like an ONNX file."""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

import zoo
from zoo.cli import main
from zoo.core.errors import MissingExtraError, OnnxModelError, ParityError
from zoo.runtime.exported import open_detector, resolve_runtime

pytest.importorskip("openvino")

from zoo.export.openvino_export import export_openvino  # noqa: E402
from zoo.runtime.openvino import OpenVinoModel  # noqa: E402

IMGSZ = 64


@pytest.fixture(scope="module")
def nano_ir(tmp_path_factory):
    torch.manual_seed(0)
    model = zoo.create_model("leyolo-nano").eval()
    out = tmp_path_factory.mktemp("ov") / "nano.xml"
    result = export_openvino(model, imgsz=IMGSZ, batch=1, out=out, simplify=False)
    return model, result


def test_ir_matches_pytorch_and_describes_itself(nano_ir):
    model, result = nano_ir
    assert result.path.is_file() and result.path.with_suffix(".bin").is_file()
    assert result.parity.passed and result.parity.value <= 1e-4
    ir = OpenVinoModel(result.path)
    assert ir.metadata["model"] == "leyolo-nano" and ir.metadata["target"] == "openvino"
    assert ir.imgsz == (IMGSZ, IMGSZ) and ir.stride == 32 and len(ir.names) == 80
    x = torch.rand(1, 3, IMGSZ, IMGSZ, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = model(x)
        ref = ref[0] if isinstance(ref, (tuple, list)) else ref
    got = ir(x)
    assert got.shape == ref.shape
    assert float((got[:, 4:] - ref[:, 4:]).abs().max()) < 1e-4  # class scores, float32 inference on both sides


def test_xml_without_its_bin_names_the_missing_file(nano_ir, tmp_path):
    lonely = tmp_path / "lonely.xml"
    lonely.write_bytes(nano_ir[1].path.read_bytes())
    with pytest.raises(FileNotFoundError, match=r"lonely\.bin is missing"):
        OpenVinoModel(lonely)


def test_ir_of_another_model_names_the_field_that_differs(nano_ir):
    with pytest.raises(OnnxModelError, match="'model' differs"):
        open_detector(nano_ir[1].path, "leyolo-small")
    with pytest.raises(OnnxModelError, match="'names' differs"):
        open_detector(nano_ir[1].path, "leyolo-nano", num_classes=5)


def test_runtime_follows_the_suffix_and_refuses_contradictions():
    assert resolve_runtime(None, "m.xml") == "openvino" and resolve_runtime(None, "m.onnx") == "onnx"
    assert resolve_runtime(None, "m.pt") == "torch"
    with pytest.raises(ValueError, match="choose one of torch, onnx, openvino"):
        resolve_runtime("tensorrt", "m.xml")
    with pytest.raises(ValueError, match="--runtime onnx needs an exported .onnx"):
        resolve_runtime("onnx", "m.xml")


def test_zoo_predict_runs_an_ir_like_an_onnx_file(nano_ir, tmp_path, capsys):
    image = tmp_path / "img.png"
    from PIL import Image

    Image.fromarray(np.full((48, 64, 3), 128, np.uint8)).save(image)
    assert main(["predict", "leyolo-nano", "--weights", str(nano_ir[1].path), "--source", str(image), "--out",
                 str(tmp_path / "pred"), "--no-draw", "--imgsz", str(IMGSZ)]) == 0
    assert (tmp_path / "pred" / "detections.json").is_file()
    assert main(["predict", "leyolo-small", "--weights", str(nano_ir[1].path), "--source", str(image), "--out",
                 str(tmp_path / "pred2")]) == 2
    assert "'model' differs" in capsys.readouterr().err


def test_failed_parity_writes_neither_file(tmp_path):
    out = tmp_path / "strict.xml"
    with pytest.raises(ParityError, match="nothing was written"):
        export_openvino(zoo.create_model("leyolo-nano").eval(), imgsz=32, batch=1, out=out, tolerance=1e-30,
                        simplify=False)
    assert list(tmp_path.iterdir()) == []


def test_cli_refuses_unknown_target_and_misplaced_flags(capsys):
    with pytest.raises(SystemExit) as err:
        main(["export", "leyolo-nano", "--target", "tensorrt"])
    assert err.value.code == 2 and "openvino" in capsys.readouterr().err
    assert main(["export", "leyolo-nano", "--target", "cpu", "--int8"]) == 2
    assert "options of --target openvino" in capsys.readouterr().err


def test_missing_openvino_is_one_line_naming_the_extra(monkeypatch, tmp_path):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "openvino" else real(name, *a))
    with pytest.raises(MissingExtraError, match=r"pip install effzoo\[openvino\]"):
        OpenVinoModel(tmp_path / "any.xml")
