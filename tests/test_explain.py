"""``zoo.explain``: maps on the original pixel grid, deterministic, of what ``zoo.predict`` reported.

Independent sources: the spec's head taps (leyolo.md §2.8), ``zoo.predict``'s detections, Grad-CAM's
formula (Selvaraju et al. 2017, eq. 1-2) computed here with plain autograd, and the letterbox arithmetic.
"""
from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

import zoo
from zoo.tasks.detection import explain as explain_mod
from zoo.tasks.detection.explain import METHODS, default_layers, explain
from zoo.tasks.detection.explain_targets import detection_anchors, to_original_grid
from zoo.tasks.detection.postprocess import non_max_suppression, xywh_to_xyxy
from zoo.tasks.detection.preprocess import letterbox, preprocess_batch

pytest.importorskip("pytorch_grad_cam")


@pytest.fixture(scope="module")
def tiny_nano() -> torch.nn.Module:
    """A seeded random-init Nano: enough to check shapes, determinism and plumbing in milliseconds at 64 px."""
    torch.manual_seed(0)
    return zoo.create_model("leyolo-nano", num_classes=5).eval()


@pytest.fixture(scope="module")
def released_nano(nano_checkpoint) -> torch.nn.Module:
    return zoo.create_model("leyolo-nano", checkpoint_path=nano_checkpoint).eval()


def _image(h: int = 100, w: int = 130, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)


def test_default_layers_are_the_spec_head_taps():
    # spec leyolo.md §2.8: Nano/Small's Detect reads [24, 29, 34]; Medium/Large's reads [27, 32, 37].
    assert default_layers(zoo.create_model("leyolo-nano")) == ["model.24", "model.29", "model.34"]
    assert default_layers(zoo.create_model("leyolo-medium")) == ["model.27", "model.32", "model.37"]


def test_kpca_map_is_on_the_original_grid_and_deterministic(tiny_nano):
    image = _image()
    first = explain(tiny_nano, image, imgsz=64)[0]
    second = explain(tiny_nano, [image], imgsz=64)[0]
    assert first.map.shape == (100, 130) and first.map.dtype == np.float32
    assert first.method == "kpca-cam" and first.layers == ("model.24", "model.29", "model.34")
    np.testing.assert_array_equal(first.map, second.map)
    assert 0.0 <= first.map.min() < first.map.max() <= 1.0
    assert first.map.std() > 0.01  # not a constant map


def test_explanation_reports_the_detections_of_predict(released_nano, bus_image):
    ex = explain(released_nano, bus_image, imgsz=320, method="eigen-cam")[0]
    det = zoo.predict(released_nano, bus_image, imgsz=320)[0]
    assert len(det) >= 3
    torch.testing.assert_close(ex.detections.boxes, det.boxes)
    torch.testing.assert_close(ex.detections.scores, det.scores)
    assert ex.detections.class_names == det.class_names
    assert ex.box_maps is None  # gradient-free: one class-agnostic map


def test_grad_cam_of_a_detection_is_the_formula_on_its_anchor_score(released_nano, bus_image):
    """Grad-CAM of the top detection = ReLU(sum_k mean(dS/dA_k) A_k) with S that anchor's class score."""
    ex = explain(released_nano, bus_image, imgsz=320, method="grad-cam", layers="model.34")[0]
    arr = np.asarray(__import__("PIL.Image", fromlist=["Image"]).open(bus_image).convert("RGB"))
    x, (info,) = preprocess_batch([arr], 320)
    acts = {}
    handle = released_nano.model[34].register_forward_hook(lambda m, i, o: acts.update(a=o))
    out = released_nano(x)[0]  # (4 + nc, A)
    handle.remove()
    dets = non_max_suppression(out[None].detach(), conf=0.25, iou=0.7)[0]
    # The anchor of the top detection, found here from its box (not with the code under test).
    boxes = xywh_to_xyxy(out[:4].T.detach())
    anchor = int((boxes - dets[0, :4]).abs().sum(1).argmin())
    score = out[4 + int(dets[0, 5]), anchor]
    (grad,) = torch.autograd.grad(score, acts["a"])
    cam = torch.relu((grad.mean((2, 3), keepdim=True) * acts["a"]).sum(1))[0].detach().numpy()
    cam = (cam - cam.min()) / (cam.max() - cam.min())
    big = torch.nn.functional.interpolate(torch.from_numpy(cam)[None, None], size=tuple(x.shape[2:]),
                                          mode="bilinear", align_corners=False)[0, 0].numpy()
    expected = to_original_grid(big, info)
    assert ex.box_maps.shape == (len(ex.detections), *info.orig_hw)
    assert ex.anchors[0] == anchor
    # grad-cam resizes with cv2 (pixel-centre bilinear like torch's align_corners=False): equal up to rounding.
    assert np.abs(ex.box_maps[0] - expected).mean() < 0.01
    assert np.corrcoef(ex.box_maps[0].ravel(), expected.ravel())[0, 1] > 0.999


def test_detection_anchors_are_the_rows_nms_kept():
    torch.manual_seed(1)
    decoded = torch.cat([torch.rand(2, 50) * 60 + 2, torch.rand(2, 50) * 20 + 4, torch.rand(3, 50)])  # nc = 3
    dets = non_max_suppression(decoded[None], conf=0.5, iou=0.5)[0]
    anchors = detection_anchors(decoded, dets)
    for a, row in zip(anchors, dets):
        assert torch.allclose(xywh_to_xyxy(decoded[:4, a][None])[0], row[:4])
        assert decoded[4 + int(row[5]), a] == row[4]


def test_original_grid_undoes_the_letterbox():
    image = np.zeros((100, 200, 3), np.uint8)
    lb, info = letterbox(image, 64, auto=False)  # 64 x 32 content, 16 px bars top and bottom
    assert info.pad_tl == (0, 16) and info.ratio == pytest.approx(0.32)
    cam = np.zeros(lb.shape[:2], np.float32)
    cam[16:32, :32] = 1.0  # the top-left quarter of the content
    out = to_original_grid(cam, info)
    assert out.shape == (100, 200)
    assert out[:45, :95].min() > 0.9 and out[55:, :].max() < 0.1 and out[:, 105:].max() < 0.1


@pytest.mark.parametrize("method", list(METHODS))
def test_every_method_gives_a_map_per_image_and_per_detection(tiny_nano, method):
    (ex,) = explain(tiny_nano, _image(64, 80), method=method, imgsz=64, conf=0.0, max_det=2)
    assert ex.map.shape == (64, 80) and np.isfinite(ex.map).all() and ex.method == method
    if METHODS[method].uses_target:
        assert ex.box_maps.shape == (2, 64, 80)


def test_explicit_boxes_are_explained_with_the_models_own_rows(released_nano, bus_image):
    det = zoo.predict(released_nano, bus_image, imgsz=320)[0]
    ex = explain(released_nano, bus_image, imgsz=320, method="grad-cam", boxes=[det.boxes[:2].numpy()])[0]
    assert len(ex.detections) == 2
    torch.testing.assert_close(ex.detections.boxes, det.boxes[:2], atol=1e-3, rtol=0)
    assert ex.detections.class_names == det.class_names[:2]


def test_unknown_layer_lists_close_names(tiny_nano):
    with pytest.raises(ValueError, match=r"Unknown layer 'model\.244'.*model\.24"):
        explain(tiny_nano, _image(), layers=["model.244"], imgsz=64)


def test_unknown_method_suggests_the_closest(tiny_nano):
    with pytest.raises(ValueError, match="Did you mean 'kpca-cam'"):
        explain(tiny_nano, _image(), method="kpca_cam", imgsz=64)


def test_kpca_refuses_a_kernel_matrix_too_large_for_memory(tiny_nano):
    # model.0 is stride 2: 256 x 256 input -> 128 x 128 = 16,384 positions (a 2 GB float64 kernel matrix).
    with pytest.raises(ValueError, match="kernel matrix"):
        explain(tiny_nano, _image(256, 256), layers="model.0", imgsz=256)


def test_missing_grad_cam_is_one_line_naming_the_extra(tiny_nano, monkeypatch):
    monkeypatch.setitem(sys.modules, "pytorch_grad_cam", None)  # what an absent package looks like to import
    with pytest.raises(explain_mod.ExplainExtraMissing, match=r"pip install 'effzoo\[explain\]'") as err:
        explain(tiny_nano, _image(), imgsz=64)
    assert "\n" not in str(err.value)


def test_onnx_like_models_are_refused_with_a_reason():
    with pytest.raises(ValueError, match="eager PyTorch model"):
        explain(lambda x: x, _image())


def test_gradient_methods_work_on_a_frozen_model_and_leave_it_as_it_was(tiny_nano):
    frozen = zoo.create_model("leyolo-nano", num_classes=5).requires_grad_(False).train()
    (ex,) = explain(frozen, _image(64, 80), method="grad-cam", imgsz=64, conf=0.0, max_det=1)
    assert ex.box_maps.shape == (1, 64, 80) and ex.map.max() > 0
    assert frozen.training and not any(p.requires_grad for p in frozen.parameters())
    assert all(p.grad is None for p in frozen.parameters())
