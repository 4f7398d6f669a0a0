"""The generic training engine: config, schedule, param groups, EMA, sampler, checkpoints, resume, DDP."""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from helpers import free_port, grab_grads
from torch import nn
from train_toy import ToyTask, toy_config

from zoo.core.errors import CheckpointError
from zoo.engine.checkpointing import load_state, state_path
from zoo.engine.ema import ModelEMA
from zoo.engine.optim import Schedule, apply_schedule, build_optimizer, param_groups
from zoo.engine.sampler import ResumableSampler
from zoo.engine.trainer import Trainer
from zoo.tasks.base.recipe import TrainConfig, load_config
from zoo.tasks.base.training import StopTraining


# -- config ------------------------------------------------------------------------------------------
def test_unknown_config_key_names_closest_key(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("epochs: 3\nlr_0: 0.01\n")
    with pytest.raises(ValueError, match=r"unknown key 'lr_0'\. Did you mean 'lr0'"):
        load_config(TrainConfig, recipe)


def test_config_wrong_type_and_range_are_errors(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("epochs: three\n")
    with pytest.raises(ValueError, match="epochs='three' should be of type int"):
        load_config(TrainConfig, recipe)
    with pytest.raises(ValueError, match="batch=0 is out of range"):
        load_config(TrainConfig, None, {"batch": 0})
    with pytest.raises(ValueError, match="optimizer='sgd' is not supported"):
        load_config(TrainConfig, None, {"optimizer": "sgd"})


def test_overrides_win_over_recipe_and_none_is_ignored(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("epochs: 3  # passes\nbatch: 4\n")
    cfg = load_config(TrainConfig, recipe, {"epochs": 7, "batch": None})
    assert (cfg.epochs, cfg.batch) == (7, 4)


# -- optimizer and schedule ----------------------------------------------------------------------------
def test_param_groups_split_bias_norm_weights_and_decayed_weights():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Conv2d(4, 4, 1, bias=False), nn.LayerNorm(4))
    groups = param_groups(model, 0.001)
    ids = [{id(p) for p in g["params"]} for g in groups]
    assert [g["name"] for g in groups] == ["bias", "decay", "no_decay"]
    assert ids[0] == {id(model[0].bias), id(model[1].bias), id(model[3].bias)}
    assert ids[1] == {id(model[0].weight), id(model[2].weight)}
    assert ids[2] == {id(model[1].weight), id(model[3].weight)}
    assert [g["weight_decay"] for g in groups] == [0.0, 0.001, 0.0]


def test_schedule_matches_ultralytics_warmup_and_linear_decay():
    # 10 iterations/epoch, 5 epochs, warm-up 20 iterations, bias lr starting at 0.1
    s = Schedule(lr0=0.01, lrf=0.01, shape="linear", per_epoch=True, iters_per_epoch=10, total_iters=50, epochs=5,
                 warmup_iters=20, warmup_bias_lr=0.1, momentum=0.937, warmup_momentum=0.8, accumulate=4,
                 ramp_accumulate=True)
    lf = lambda e: (1 - e / 5) * 0.99 + 0.01  # noqa: E731  ultralytics' lambda
    assert s.lr(0, 0) == pytest.approx(0.1) and s.lr(0, 1) == 0.0
    assert s.lr(15, 1) == pytest.approx(15 / 20 * 0.01 * lf(1))  # interpolating towards the epoch-1 lr
    assert s.lr(15, 0) == pytest.approx(0.1 + 15 / 20 * (0.01 * lf(1) - 0.1))
    assert s.lr(35, 2) == pytest.approx(0.01 * lf(3))
    assert s.momentum_at(10) == pytest.approx(0.8 + 0.5 * 0.137) and s.momentum_at(30) == 0.937
    assert [s.accumulate_at(i) for i in (0, 10, 20, 30)] == [1, 2, 4, 4]  # round(interp(1 -> 4))
    model = nn.Linear(2, 2)
    opt = build_optimizer(param_groups(model, 0.0), "SGD", 0.01, 0.937)
    apply_schedule(opt, s, 35)
    assert [g["lr"] for g in opt.param_groups] == [pytest.approx(0.01 * lf(3))] * 3
    assert opt.param_groups[0]["nesterov"] and opt.param_groups[1]["momentum"] == 0.937


def test_cosine_per_iteration_schedule_ends_at_lrf():
    s = Schedule(lr0=1.0, lrf=0.1, shape="cosine", per_epoch=False, iters_per_epoch=7, total_iters=100, epochs=15,
                 warmup_iters=0)
    assert s.lr(0, 1) == 1.0 and s.lr(100, 1) == pytest.approx(0.1) and s.lr(50, 1) == pytest.approx(0.55)


def test_ema_follows_ultralytics_decay_formula():
    model = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(0.0)
    ema = ModelEMA(model, decay=0.9, tau=2.0)
    with torch.no_grad():
        model.weight.fill_(1.0)
    ema.update(model)
    d = 0.9 * (1 - math.exp(-1 / 2.0))
    assert ema.ema.weight.item() == pytest.approx(1 - d)


# -- sampler -------------------------------------------------------------------------------------------
def test_sampler_ranks_partition_the_epoch_and_skip_resumes_mid_epoch():
    full = ResumableSampler(10, 2, rank=0, world_size=1, seed=3)
    full.set_epoch(4)
    order = list(full)
    assert sorted(order) == list(range(10))
    ranks = [ResumableSampler(10, 2, rank=r, world_size=2, seed=3) for r in range(2)]
    for s in ranks:
        s.set_epoch(4)
    assert sorted(list(ranks[0]) + list(ranks[1])) == list(range(10))
    assert list(ranks[0]) == order[0::2]  # DistributedSampler's interleaving
    full.set_epoch(4, skip_batches=2)
    assert list(full) == order[4:]
    keyed = ResumableSampler(5, 2, seed=0, with_epoch=True)
    keyed.set_epoch(7)
    assert all(k[0] == 7 for k in keyed)


# -- checkpoints and resume -----------------------------------------------------------------------------
def _stop_at(k: int):
    def cb(trainer):
        if trainer.iteration == k:
            raise StopTraining
    return cb


def _losses(run: Path) -> list[tuple[int, float]]:
    return [(r["iteration"], r["mse"]) for r in map(json.loads, (run / "steps.jsonl").read_text().splitlines())]


@pytest.mark.parametrize("stop_at", [7, 10])  # mid-epoch (5 batches/epoch) and exactly at an epoch end
def test_resume_reproduces_uninterrupted_losses_bitwise(tmp_path, stop_at):
    cfg = dict(dropout=0.2)  # dropout: the resumed run must also restore the torch RNG
    kw = dict(nbs=16, epochs=3)  # accumulation 2 across epoch ends, pending gradients in the checkpoint
    full = Trainer(ToyTask(toy_config(**kw, out=str(tmp_path / "a")), **cfg), tmp_path / "a").fit()
    Trainer(ToyTask(toy_config(**kw), **cfg), tmp_path / "b", callbacks={"on_step_end": [_stop_at(stop_at)]}).fit()
    state = load_state(tmp_path / "b")
    assert state.iteration == stop_at
    resumed = Trainer(ToyTask(toy_config(**kw), **cfg), tmp_path / "b", resume=state).fit()
    assert _losses(tmp_path / "b") == _losses(tmp_path / "a")  # exact floats, every iteration
    assert [r["val/mse"] for r in resumed.history] == [r["val/mse"] for r in full.history]
    a, b = (load_state(tmp_path / d) for d in "ab")
    assert all(torch.equal(a.model[k], b.model[k]) for k in a.model)
    assert all(torch.equal(a.ema["weights"][k], b.ema["weights"][k]) for k in a.model)


def test_state_file_is_weights_only_loadable_and_self_describing(tmp_path):
    Trainer(ToyTask(toy_config(epochs=1, plots=True)), tmp_path / "r").fit()
    raw = torch.load(state_path(tmp_path / "r"), weights_only=True)
    assert raw["model_name"] == "toy" and raw["iteration"] == 5 and raw["config"]["batch"] == 8
    assert {"optimizer", "ema", "rng", "model"} <= set(raw)
    sidecar = json.loads((tmp_path / "r" / "weights" / "last.json").read_text())
    assert sidecar["iteration"] == 5 and sidecar["model"] == "toy"
    assert (tmp_path / "r" / "results.csv").read_text().startswith("epoch,iteration,train/mse,val/mse")
    assert (tmp_path / "r" / "results.png").stat().st_size > 1000


def test_resume_folder_of_another_model_is_refused(tmp_path):
    Trainer(ToyTask(toy_config(epochs=1)), tmp_path / "r").fit()
    with pytest.raises(CheckpointError, match="trained with model 'toy' but 'leyolo-nano' was requested"):
        load_state(tmp_path / "r", expect_model="leyolo-nano")
    with pytest.raises(FileNotFoundError, match="No training state to resume"):
        load_state(tmp_path / "nothing")


def test_interrupted_save_keeps_previous_state(tmp_path, monkeypatch):
    Trainer(ToyTask(toy_config(epochs=1)), tmp_path / "r").fit()
    before = state_path(tmp_path / "r").read_bytes()

    def broken_save(obj, f, *a, **k):
        Path(f).write_bytes(b"half a checkp")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        Trainer(ToyTask(toy_config(epochs=2)), tmp_path / "r", resume=load_state(tmp_path / "r")).fit()
    assert state_path(tmp_path / "r").read_bytes() == before
    assert not [p for p in (tmp_path / "r" / "weights").iterdir() if p.name.startswith(".")]


# -- DDP -----------------------------------------------------------------------------------------------

def _ddp_worker(rank: int, world: int, port: int, run_dir: str, out_file: str) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    torch.set_num_threads(1)
    from zoo.core.distributed import cleanup_distributed

    try:
        cfg = toy_config(batch=8, seed=5, ema=False)
        Trainer(ToyTask(cfg), run_dir, callbacks={"on_before_optimizer_step": [grab_grads(Path(out_file))]}).fit()
    finally:
        cleanup_distributed()


def test_two_process_gloo_ddp_step_equals_one_process_on_concatenated_batch(tmp_path):
    mp.start_processes(_ddp_worker, args=(2, free_port(), str(tmp_path / "ddp"), str(tmp_path / "ddp.pt")),
                       nprocs=2, join=True, start_method="spawn")
    Trainer(ToyTask(toy_config(batch=8, seed=5, ema=False)), tmp_path / "one",
            callbacks={"on_before_optimizer_step": [grab_grads(tmp_path / "one.pt")]}).fit()
    ddp, one = torch.load(tmp_path / "ddp.pt"), torch.load(tmp_path / "one.pt")
    assert ddp.keys() == one.keys()
    for name in one:
        assert one[name].abs().sum() > 0
        torch.testing.assert_close(ddp[name], one[name], atol=1e-5, rtol=1e-5)
