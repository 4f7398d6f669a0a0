"""End-to-end (--nms) graphs: the NMS inside equals zoo.predict's NMS on the PyTorch model's output."""
from __future__ import annotations

import pytest
import torch
from zoo.eval.images import load_image
from zoo.export import OnnxModel, OnnxModelError, export_onnx

import zoo
from zoo.runtime.exported import open_detector
from zoo.tasks.detection.postprocess import non_max_suppression
from zoo.tasks.detection.preprocess import preprocess_batch

IMGSZ = 320


@pytest.fixture(scope="module")
def nano(nano_checkpoint):
    return zoo.create_model("leyolo-nano", checkpoint_path=nano_checkpoint).eval()


@pytest.fixture(scope="module")
def nms_file(nano, tmp_path_factory):
    path = tmp_path_factory.mktemp("nms") / "nano-nms.onnx"
    return export_onnx(nano, "cpu", imgsz=IMGSZ, nms=True, out=path, simplify=False)


def test_nms_graph_returns_torch_predict_detections(nano, nms_file, bus_image):
    assert nms_file.outputs == ["boxes", "scores", "classes"]  # the decoded tensor used by the check is gone
    assert nms_file.parity.nms_matches is True and nms_file.parity.passed
    bus, _ = preprocess_batch([load_image(bus_image)], IMGSZ, rect=False)  # (1, 3, 320, 320)
    x = torch.cat([bus, bus.flip(3)])  # a batch of 2: detections are grouped and padded per image
    model = OnnxModel(nms_file.path)
    assert model.end_to_end
    ours = model.detect(x)
    with torch.no_grad():
        theirs = non_max_suppression(nano(x), conf=0.25, iou=0.7, max_det=300)
    assert [len(d) for d in ours] == [len(d) for d in theirs] and len(theirs[0]) >= 4
    for a, b in zip(ours, theirs):
        assert torch.equal(a[:, 5], b[:, 5])  # classes, in the same (score) order
        assert torch.allclose(a[:, :4], b[:, :4], atol=1e-2)  # input pixels; eager vs onnxruntime rounding
        assert torch.allclose(a[:, 4], b[:, 4], atol=1e-5)

    raw = model.run(x)
    n = len(theirs[0])
    assert raw["boxes"].shape == (2, 300, 4) and raw["scores"].shape == (2, 300)
    assert (raw["classes"][0, n:] == -1).all() and (raw["scores"][0, n:] == 0).all()
    assert (raw["scores"][0, :n][:-1] >= raw["scores"][0, :n][1:]).all()


def test_nms_graph_with_nothing_above_conf_returns_only_padding(tmp_path):
    # An untrained head scores ~1e-5 everywhere (prior bias), far below conf 0.25.
    model = zoo.create_model("leyolo-nano").eval()
    path = export_onnx(model, "cpu", imgsz=64, nms=True, max_det=10, out=tmp_path / "e2e.onnx", simplify=False).path
    out = OnnxModel(path).run(torch.rand(3, 3, 64, 64))
    assert out["classes"].shape == (3, 10) and (out["classes"] == -1).all() and (out["scores"] == 0).all()


def test_end_to_end_file_is_refused_where_raw_predictions_are_needed(nms_file):
    model = OnnxModel(nms_file.path)
    with pytest.raises(OnnxModelError, match="NMS built in"):
        model(torch.rand(1, 3, IMGSZ, IMGSZ))
    with pytest.raises(OnnxModelError, match="NMS built in"):
        open_detector(nms_file.path, "leyolo-nano")
