"""The onnxruntime wrapper: clear errors for bad files, and exported files serving zoo predict / zoo val."""
from __future__ import annotations

import json

import onnx
import pytest
import torch
from onnx import TensorProto, helper
from zoo.export import OnnxModel, OnnxModelError, export_onnx

import zoo
from zoo.cli import main
from zoo.runtime.exported import open_detector, resolve_runtime

CONF_TOL, BOX_TOL = 0.002, 0.5  # the golden tolerances of tests/test_predict_golden.py (issue 5)


def _tiny_graph(opset: int) -> onnx.ModelProto:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "tiny", [x], [y])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


@pytest.mark.parametrize("content", [b"", b"this is not a model", bytes(range(256)) * 8],
                         ids=["empty", "text", "binary-noise"])
def test_corrupt_file_gives_one_clear_error(content, tmp_path):
    path = tmp_path / "model.onnx"
    path.write_bytes(content)
    expected = r"model\.onnx .*(not a readable ONNX file|holds no ONNX graph).*export it"
    with pytest.raises(OnnxModelError, match=expected):
        OnnxModel(path)


def test_truncated_export_gives_one_clear_error(tmp_path):
    good = tmp_path / "good.onnx"
    onnx.save(_tiny_graph(17), str(good))
    assert OnnxModel(good, ["CPUExecutionProvider"])(torch.tensor([[-1.0, 2.0]])).tolist() == [[0.0, 2.0]]
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    with pytest.raises(OnnxModelError, match="cut.onnx"):
        OnnxModel(cut)


def test_too_old_opset_is_refused_with_the_fix(tmp_path):
    path = tmp_path / "old.onnx"
    onnx.save(_tiny_graph(13), str(path))
    with pytest.raises(OnnxModelError, match="opset 13; effzoo runs opset 17 or newer: re-export it with --opset 17"):
        OnnxModel(path)


def test_opset_newer_than_onnxruntime_is_refused_with_the_fix(tmp_path):
    path = tmp_path / "future.onnx"
    onnx.save(_tiny_graph(99), str(path))
    with pytest.raises(OnnxModelError, match="onnxruntime cannot run .*Re-export it with --opset 17"):
        OnnxModel(path)


def test_missing_file_and_missing_provider(tmp_path):
    with pytest.raises(FileNotFoundError, match="ONNX file not found"):
        OnnxModel(tmp_path / "nope.onnx")
    path = tmp_path / "t.onnx"
    onnx.save(_tiny_graph(17), str(path))
    with pytest.raises(OnnxModelError, match="NoSuchExecutionProvider not available"):
        OnnxModel(path, ["NoSuchExecutionProvider"])


def test_runtime_choice_follows_the_weights_file():
    assert resolve_runtime(None, "a.onnx") == "onnx" and resolve_runtime(None, "a.pt") == "torch"
    assert resolve_runtime(None, None) == "torch"
    with pytest.raises(ValueError, match="is an exported onnx file"):
        resolve_runtime("torch", "a.onnx")
    with pytest.raises(ValueError, match="needs an exported .onnx file"):
        resolve_runtime("onnx", "a.safetensors")


def test_export_cli_errors_are_one_line(capsys):
    assert main(["export", "leyolo-nan"]) == 2
    assert "Did you mean 'leyolo-nano'" in capsys.readouterr().err
    assert main(["export", "leyolo-nano", "--seq-len", "16"]) == 2
    assert "pass --imgsz, not --seq-len" in capsys.readouterr().err
    assert main(["export", "leyolo-nano", "--imgsz", "100"]) == 2
    assert "multiple of the model stride 32" in capsys.readouterr().err
    assert main(["export", "pi-gpt2-tiny-sm", "--batch", "zero"]) == 2
    assert "--batch must be 'dynamic' or a positive integer" in capsys.readouterr().err


def test_exported_nano_gives_bus_golden_detections_through_zoo_predict(nano_checkpoint, nano_golden, bus_image,
                                                                      tmp_path, capsys):
    out = tmp_path / "nano.onnx"
    # Free height/width: zoo predict letterboxes bus.jpg to 640x480, exactly like the official predictor.
    assert main(["export", "leyolo-nano", "--weights", str(nano_checkpoint), "--imgsz", "320", "--dynamic-hw",
                 "--no-simplify", "--out", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["parity"]["passed"] is True and report["inputs"] == ["batch", 3, "height", "width"]
    assert main(["predict", "leyolo-nano", "--weights", str(out), "--source", str(bus_image), "--runtime", "onnx",
                 "--out", str(tmp_path / "pred"), "--no-draw", "--json"]) == 0
    dets = json.loads(capsys.readouterr().out)["images"][0]["detections"]
    golden = nano_golden["bus_predict_default"]["detections"]
    assert len(dets) == len(golden)
    for got, ref in zip(dets, golden):
        assert got["class_id"] == ref["class_id"] and abs(got["score"] - ref["conf_full"]) < CONF_TOL
        assert max(abs(a - b) for a, b in zip(got["xyxy"], ref["xyxy_full"])) < BOX_TOL
    with pytest.raises(OnnxModelError, match="exported from 'leyolo-nano', not 'leyolo-small'"):
        open_detector(out, "leyolo-small")


def test_zoo_val_runs_an_exported_file_and_matches_pytorch(tmp_path, capsys):
    from zoo.eval.datasets import SyntheticConfig, synthetic_dataset

    from zoo.tasks.detection.val import val_full

    cfg = SyntheticConfig(num_train=1, num_val=4, image_size=128, min_size=16, max_size=48, seed=5)
    data = synthetic_dataset("val", cfg, root=tmp_path / "shapes")
    model = zoo.create_model("leyolo-nano", num_classes=data.num_classes, names=data.names).eval()
    with torch.no_grad():  # class bias 0 instead of the ~1e-5 prior: scores ~0.5, so there are detections to score
        for branch in model.head.cv3:
            branch[-1].bias.zero_()
    path = export_onnx(model, "cpu", imgsz=128, out=tmp_path / "n5.onnx", simplify=False).path
    folder = str(tmp_path / "shapes")
    assert main(["val", "leyolo-nano", "--weights", str(path), "--data", folder, "--imgsz", "128", "--json",
                 "--out", str(tmp_path / "onnx.json")]) == 0
    onnx_stats = json.loads(capsys.readouterr().out)
    ref = val_full(model, data, imgsz=128)
    saved = json.loads((tmp_path / "onnx.json").read_text())
    # An untrained model scores AP 0 either way; the detections it makes must agree. With every score near
    # 0.5, float32 rounding may flip an NMS decision or two between the runtimes, hence the 2 % slack.
    assert ref.num_detections > 200 and abs(saved["num_detections"] - ref.num_detections) <= 0.02 * ref.num_detections
    assert onnx_stats.keys() == ref.stats.keys()
    assert all(abs(onnx_stats[k] - ref.stats[k]) < 1e-4 for k in onnx_stats)
    with pytest.raises(OnnxModelError, match="language-modeling model, not a detector"):
        lm = export_onnx(zoo.create_model("pi-gpt2-tiny-sm"), "cpu", seq_len=8, out=tmp_path / "lm.onnx",
                         simplify=False)
        open_detector(lm.path)
