"""The released Nano checkpoint on bus.jpg gives the official predictor's six detections (API and CLI)."""
from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
from zoo.eval.images import load_image

import zoo
from zoo.cli import main

CONF_TOL, BOX_TOL = 0.002, 0.5  # issue 5 tolerances


@pytest.fixture(scope="module")
def nano(nano_checkpoint):
    return zoo.create_model("leyolo-nano", checkpoint_path=nano_checkpoint).eval()


@pytest.fixture(scope="module")
def bus_ref(nano, bus_image):
    return zoo.predict(nano, bus_image)[0]


def _assert_matches(dets: list[dict], golden: list[dict]) -> None:
    assert len(dets) == len(golden)
    for got, ref in zip(dets, golden):
        assert got["class_id"] == ref["class_id"] and got["name"] == ref["name"]
        assert abs(got["score"] - ref["conf_full"]) < CONF_TOL
        assert max(abs(a - b) for a, b in zip(got["xyxy"], ref["xyxy_full"])) < BOX_TOL


def test_predict_api_reproduces_golden_bus_detections(bus_ref, nano_golden):
    det = bus_ref
    _assert_matches(det.to_list(), nano_golden["bus_predict_default"]["detections"])
    assert det.image_hw == (1080, 810)
    coco = det.to_coco(image_id=7)
    assert coco[0]["image_id"] == 7 and coco[0]["category_id"] == 0
    x1, y1, x2, y2 = det.boxes[0].tolist()
    assert coco[0]["bbox"] == pytest.approx([x1, y1, x2 - x1, y2 - y1])


def test_fused_model_and_low_conf_match_the_official_predictor(nano, bus_image, nano_golden):
    # The official predictor runs the fused model; at conf 0.001 it keeps 274 detections.
    fused = copy.deepcopy(nano).fuse()
    det = zoo.predict(fused, bus_image, conf=0.001)[0]
    ref = nano_golden["bus_predict_conf0.001_top20"]
    assert len(det) == ref["num_detections"]
    _assert_matches(det.to_list()[:20], ref["detections"])


def test_all_input_kinds_give_the_same_detections(nano, bus_image, bus_ref):
    from PIL import Image

    arr = load_image(bus_image)
    # One batch of two: a PIL image and a float (3, H, W) tensor in [0, 1] must equal the path result.
    results = zoo.predict(nano, [Image.open(bus_image), torch.from_numpy(arr).permute(2, 0, 1).float() / 255],
                          batch=2)
    ref = bus_ref
    for det in results:
        assert torch.equal(det.labels, ref.labels)
        assert torch.allclose(det.boxes, ref.boxes, atol=1e-3) and torch.allclose(det.scores, ref.scores, atol=1e-5)
    drawn = ref.draw()
    assert drawn.shape == (1080, 810, 3) and not np.array_equal(drawn, arr)


def test_cli_predict_writes_annotated_image_and_json(bus_image, nano_checkpoint, nano_golden, tmp_path, capsys):
    out = tmp_path / "pred"
    code = main(["predict", "leyolo-nano", "--weights", str(nano_checkpoint), "--source", str(bus_image),
                 "--out", str(out)])
    assert code == 0
    assert "4 person, 1 bus, 1 skateboard" in capsys.readouterr().out
    report = json.loads((out / "detections.json").read_text())
    _assert_matches(report["images"][0]["detections"], nano_golden["bus_predict_default"]["detections"])
    picture = load_image(out / "bus.jpg")
    assert picture.shape == (1080, 810, 3)
    assert not np.array_equal(picture, load_image(bus_image))  # the boxes are drawn on it


def test_cli_predict_bad_source_fails_cleanly_without_output(nano_checkpoint, tmp_path, capsys):
    out = tmp_path / "pred"
    code = main(["predict", "leyolo-nano", "--weights", str(nano_checkpoint), "--source",
                 str(tmp_path / "nothing" / "*.jpg"), "--out", str(out)])
    assert code == 2
    assert "No images match" in capsys.readouterr().err
    assert not out.exists()
