"""``zoo explain``: overlays and JSON per image, one map per detection for targeted methods, bad input = exit 2."""
from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch
from PIL import Image

import zoo
from zoo.cli import main
from zoo.core.checkpoint import save_safetensors

pytest.importorskip("pytorch_grad_cam")


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    torch.manual_seed(0)
    return save_safetensors(zoo.create_model("leyolo-nano", num_classes=5),
                            tmp_path_factory.mktemp("w") / "nano5.safetensors")


@pytest.fixture()
def photo(tmp_path):
    path = tmp_path / "in" / "shapes.png"
    path.parent.mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (72, 96, 3), dtype=np.uint8)).save(path)
    return path


def _run(weights, source, out, *extra):
    return main(["explain", "leyolo-nano", "--weights", str(weights), "--source", str(source), "--imgsz", "64",
                 "--out", str(out), *extra])


def test_targeted_method_writes_overlay_per_image_and_per_detection(weights, photo, tmp_path, capsys):
    out = tmp_path / "out"
    assert _run(weights, photo, out, "--method", "grad-cam", "--conf", "0", "--max-det", "2") == 0
    report = json.loads((out / "explain.json").read_text())
    (entry,) = report["images"]
    assert report["method"] == "grad-cam" and report["layers"] == ["model.24", "model.29", "model.34"]
    assert (entry["height"], entry["width"]) == (72, 96)
    assert np.asarray(Image.open(out / "shapes_grad-cam.png")).shape == (72, 96, 3)
    assert len(entry["detections"]) == 2
    for k, det in enumerate(entry["detections"]):
        assert (out / f"shapes_grad-cam_det{k}.png").is_file()
        assert 0.0 <= det["map"]["energy_in_boxes"] <= 1.0
    assert 0.0 <= entry["map"]["min"] <= entry["map"]["max"] <= 1.0
    assert "shapes.png" in capsys.readouterr().out


def test_gradient_free_method_writes_one_map(weights, photo, tmp_path):
    out = tmp_path / "out"
    assert _run(weights, photo, out, "--method", "kpca-cam", "--conf", "0", "--max-det", "2") == 0
    assert sorted(p.name for p in out.iterdir()) == ["explain.json", "shapes_kpca-cam.png"]


def test_output_that_would_overwrite_an_input_is_refused(weights, photo, capsys):
    clash = photo.parent / "shapes_kpca-cam.png"
    clash.write_bytes(photo.read_bytes())
    before = clash.read_bytes()
    assert _run(weights, photo.parent, photo.parent) == 2
    err = capsys.readouterr().err.strip()
    assert "would overwrite an input" in err and len(err.splitlines()) == 1
    assert clash.read_bytes() == before


def test_unknown_method_is_an_argparse_error(weights, photo, tmp_path, capsys):
    with pytest.raises(SystemExit) as caught:
        _run(weights, photo, tmp_path / "o", "--method", "kpca_cam")
    assert caught.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "invalid choice: 'kpca_cam'" in err[0]


@pytest.mark.parametrize("extra, message", [
    (["--layers", "model.99"], "Unknown layer 'model.99'"),
    (["--imgsz", "8"], "--imgsz must be at least 32"),
    (["--gamma", "-1"], "gamma must be a positive number"),
])
def test_bad_input_is_one_line_and_exit_2(weights, photo, tmp_path, capsys, extra, message):
    assert _run(weights, photo, tmp_path / "o", *extra) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert not (tmp_path / "o" / "explain.json").exists()


def test_missing_source_is_refused(weights, tmp_path, capsys):
    assert _run(weights, tmp_path / "nope.jpg", tmp_path / "o") == 2
    assert "not found" in capsys.readouterr().err


def test_missing_grad_cam_names_the_extra(weights, photo, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "pytorch_grad_cam", None)  # what an absent package looks like to import
    assert _run(weights, photo, tmp_path / "o") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pip install 'effzoo[explain]'" in err[0]

