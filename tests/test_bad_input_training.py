"""The bad-input table of issue 17, training: recipe values are range-checked (finite, YAML 1.1 numbers),
unknown keys are blamed on the flag that gave them (also with --resume), a diverging run stops with one line
after saving its last finite state, and every log stays strict JSON."""
from __future__ import annotations

import json
import math

import pytest
import torch
from train_toy import ToyTask, toy_config

from tests.bad_input_helpers import refused, snapshot
from zoo.core.errors import CheckpointError, TrainingDivergedError
from zoo.engine.checkpointing import TrainState, load_state, save_state, state_path
from zoo.engine.trainer import Trainer
from zoo.tasks.base.recipe import TrainConfig, load_config


def _strict_json(text: str):
    def refuse(name):
        raise ValueError(f"{name} is not JSON")

    return json.loads(text, parse_constant=refuse)


# -- recipe values -----------------------------------------------------------------------------------
@pytest.mark.parametrize("value, words", [
    (".inf", ["lr0=inf", "not a finite number"]),
    (".nan", ["lr0=nan", "not a finite number"]),
    ("1e8", ["lr0=100000000.0", "out of range", "[0, 1]"]),  # read as a float, then range-checked
    ("-0.1", ["lr0=-0.1", "out of range"]),
])
def test_bad_lr0_is_refused_before_anything_is_written(tmp_path, capsys, monkeypatch, value, words):
    monkeypatch.chdir(tmp_path)
    refused(["train", "leyolo-nano", "--set", f"lr0={value}", "--out", tmp_path / "run"], capsys, *words)
    assert not (tmp_path / "run").exists() and not (tmp_path / "runs").exists()


def test_yaml_11_exponent_numbers_are_floats(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("lr0: 5e-3\nweight_decay: 5E-4\nepochs: 1e2\n")  # PyYAML reads these as strings
    cfg = load_config(TrainConfig, recipe, {"lrf": "1e-2"})
    assert (cfg.lr0, cfg.weight_decay, cfg.epochs, cfg.lrf) == (0.005, 0.0005, 100, 0.01)


def test_unknown_set_key_is_blamed_on_the_flag_not_the_recipe(tmp_path, capsys):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("epochs: 1\n")
    err = refused(["train", "leyolo-nano", "--config", recipe, "--set", "lr_0=0.1"], capsys,
                  "overrides (--set / flags): unknown key 'lr_0'", "Did you mean 'lr0'")
    assert str(recipe) not in err


def test_resume_with_an_unknown_set_key_is_refused(tmp_path, capsys):
    from zoo.tasks.detection.train_config import DetectionTrainConfig

    run = tmp_path / "run"
    save_state(TrainState(model_name="leyolo-nano", task="detection", config=DetectionTrainConfig(model="leyolo-nano").to_dict(),
                          iteration=0, last_opt_step=-1, model={}, optimizer={}), run / "weights")
    before = snapshot(run)
    refused(["train", "--resume", run, "--set", "bogus=1"], capsys, "unknown key 'bogus'")
    assert snapshot(run) == before


# -- divergence guard ----------------------------------------------------------------------------------
def _blow_up(at: int, value: float):
    """on_step_end: after iteration ``at`` scale the last layer so the next loss overflows (or is NaN)."""
    def cb(trainer):
        if trainer.iteration == at + 1:
            with torch.no_grad():
                trainer.model[-1].weight.mul_(value)
    return cb


def test_diverging_run_stops_after_saving_its_last_finite_state(tmp_path):
    run = tmp_path / "r"
    task = ToyTask(toy_config(epochs=3))
    with pytest.raises(TrainingDivergedError, match=r"loss is inf at iteration 4 .*last finite state"):
        Trainer(task, run, callbacks={"on_step_end": [_blow_up(3, 1e30)]}).fit()  # 1e30: finite, loss overflows
    state = load_state(run)  # a valid, finite state: the one before iteration 4
    assert state.iteration == 4
    assert all(bool(torch.isfinite(v).all()) for v in state.model.values())
    sidecar = _strict_json((run / "weights" / "last.json").read_text())
    assert sidecar["iteration"] == 4
    rows = [_strict_json(line) for line in (run / "steps.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in rows] == [0, 1, 2, 3] and all(math.isfinite(r["mse"]) for r in rows)
    # the state resumes like any other (and, with the same weights, stops at the same place)
    with pytest.raises(TrainingDivergedError, match="iteration 4"):
        Trainer(ToyTask(toy_config(epochs=3)), run, resume=load_state(run)).fit()


def test_nan_weights_keep_the_previous_checkpoint(tmp_path):
    run = tmp_path / "r"
    with pytest.raises(TrainingDivergedError, match="already non-finite, so the previous checkpoint"):
        Trainer(ToyTask(toy_config(epochs=3)), run, callbacks={"on_step_end": [_blow_up(2, float("nan"))]}).fit()
    assert load_state(run).iteration == 3  # saved (finite) at the end of iteration 2, before the NaN


def test_resume_refuses_a_state_with_non_finite_weights(tmp_path):
    run = tmp_path / "r"
    Trainer(ToyTask(toy_config(epochs=1)), run).fit()
    raw = torch.load(state_path(run), weights_only=True)
    raw["model"]["0.weight"][0, 0] = float("nan")
    torch.save(raw, state_path(run))
    with pytest.raises(CheckpointError, match=r"non-finite weights \(1 of 4 tensors"):
        load_state(run)


def test_step_log_writes_null_for_non_finite_values(tmp_path):
    from zoo.engine.results import StepLog

    log = StepLog(tmp_path / "steps.jsonl")
    log.write({"iteration": 0, "loss": float("nan"), "lr": [float("inf"), 0.1]})
    assert _strict_json((tmp_path / "steps.jsonl").read_text()) == {"iteration": 0, "loss": None, "lr": [None, 0.1]}
