"""One input-size rule: a size left unset is the model's own (its card's, or its checkpoint's), everywhere."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import zoo
from zoo.cli import main
from zoo.core.checkpoint import save_safetensors
from zoo.core.sizes import model_input_size
from zoo.export import export_onnx
from zoo.tasks.detection.train_config import DetectionTrainConfig


def _record_inputs(model: torch.nn.Module) -> list[tuple[int, ...]]:
    shapes: list[tuple[int, ...]] = []
    model.register_forward_pre_hook(lambda _m, args: shapes.append(tuple(args[0].shape)))
    return shapes


def test_predict_on_leyolo_large_without_imgsz_runs_at_the_cards_768():
    model = zoo.create_model("leyolo-large").eval()
    shapes = _record_inputs(model)
    square = np.full((1000, 1000, 3), 127, dtype=np.uint8)  # square: the letterbox fills imgsz x imgsz
    zoo.predict(model, square)
    assert zoo.model_info("leyolo-large").input_size == 768
    assert shapes == [(1, 3, 768, 768)]


def test_predict_and_val_use_the_size_a_checkpoint_was_trained_at(tmp_path):
    trained = zoo.create_model("leyolo-nano", num_classes=5, names=list("abcde"))
    path = save_safetensors(trained, tmp_path / "n.safetensors", input_size=160)
    model = zoo.create_model("leyolo-nano", checkpoint_path=path)
    assert model_input_size(model) == 160
    shapes = _record_inputs(model)
    zoo.val(model, "synthetic", batch=64)
    assert {s[2:] for s in shapes} == {(160, 160)}  # the synthetic images are square


def test_explicit_size_wins_and_duck_typed_models_fall_back_to_640():
    model = zoo.create_model("leyolo-large").eval()
    shapes = _record_inputs(model)
    zoo.predict(model, np.zeros((64, 64, 3), dtype=np.uint8), imgsz=320)
    assert shapes == [(1, 3, 320, 320)]

    class Bare:  # no card, no input_size: the ultralytics default
        def __call__(self, x):
            return torch.zeros(x.shape[0], 6, 10)

    assert model_input_size(Bare(), default=640) == 640
    with pytest.raises(ValueError, match="does not say its input size"):
        model_input_size(Bare())


def test_export_and_flops_default_to_the_card_size(tmp_path, capsys):
    result = export_onnx(zoo.create_model("leyolo-large").eval(), "cpu", out=tmp_path / "l.onnx", batch=1,
                         check=False, simplify=False)  # the size is the point here, not parity
    assert result.inputs == [1, 3, 768, 768]
    assert main(["flops", "leyolo-large", "--json"]) == 0
    assert '"input": "imgsz=768"' in capsys.readouterr().out


def test_training_recipe_imgsz_0_means_the_card_size():
    assert DetectionTrainConfig(model="leyolo-large").imgsz == 768
    assert DetectionTrainConfig(model="leyolo-nano", imgsz=160).imgsz == 160
    with pytest.raises(ValueError, match="multiple of 32"):
        DetectionTrainConfig(model="leyolo-nano", imgsz=100)
