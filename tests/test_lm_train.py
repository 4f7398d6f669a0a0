"""LM training on the shared engine: loss goes down, EReg stays finite, exact resume, DDP = one process."""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from helpers import free_port, grab_grads

from zoo.engine.api import train
from zoo.engine.checkpointing import load_state
from zoo.engine.trainer import Trainer
from zoo.tasks.base.recipe import load_config
from zoo.tasks.base.training import StopTraining
from zoo.tasks.language.objective import LMObjective
from zoo.tasks.language.train import LMTask
from zoo.tasks.language.train_config import LMTrainConfig

LN256 = math.log(256)
REPO = Path(__file__).resolve().parents[1]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("lm-cache")


def _steps(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "steps.jsonl").read_text().splitlines()]


def _tiny(cache: Path, **kw) -> dict:
    base = dict(cache=str(cache), device="cpu", val_every_steps=0, save_every_steps=0, warmup_steps=4)
    return {**base, **kw}


# -- learning -------------------------------------------------------------------------------------------
def test_sm_ln_g_lowers_validation_ce_well_below_ln256(tmp_path, cache):
    result = train("pi-gpt2-tiny-sm-ln-g", out=str(tmp_path / "run"), **_tiny(cache, max_steps=40, batch=16,
                                                                              val_batches=4, metrics_every_steps=20))
    first = _steps(tmp_path / "run")[0]
    assert abs(first["ce"] - LN256) < 0.1  # an untrained byte model is uniform over 256 ids
    assert result.metrics["val/ce"] < LN256 - 1.5, result.metrics  # byte-level code: clear drop in 40 steps
    assert result.metrics["val/ppl"] == pytest.approx(math.exp(result.metrics["val/ce"]))
    assert result.metrics["val/tokens"] == 4 * 16 * 63  # val_batches * batch chunks, T - 1 predictions each
    for name in ("entropy_curves.png", "nan_counts.png", "entropy_metrics.csv", "results.csv"):
        assert (tmp_path / "run" / name).stat().st_size > 100, name


def test_ereg_variant_trains_without_nan_and_learns_thresholds(tmp_path, cache):
    result = train("pi-gpt2-tiny-ereg-sm-t-scfuffn", out=str(tmp_path / "run"),
                   **_tiny(cache, max_steps=20, batch=16, val_batches=2, metrics_every_steps=5))
    steps = _steps(tmp_path / "run")
    assert all(math.isfinite(s["ce"]) and math.isfinite(s["ereg"]) and s["ereg"] > 0 for s in steps)
    metric_steps = [s for s in steps if "entropy" in s]
    assert [s["iteration"] for s in metric_steps] == [0, 5, 10, 15]
    assert all(v == 0 for s in metric_steps for v in s["nan"])
    assert metric_steps[0]["threshold"] == [0.5] * 4 and metric_steps[0]["temperature"] == pytest.approx([0.01] * 4)
    assert metric_steps[-1]["threshold"] != metric_steps[0]["threshold"]  # theta gets gradient from lambda L_ent
    assert math.isfinite(result.metrics["val/ce"]) and result.metrics["val/ce"] < LN256
    weights = tmp_path / "run" / "weights"
    assert (weights / "last.thresholds.safetensors").is_file() and (tmp_path / "run" / "thresholds.png").is_file()
    import zoo

    model = zoo.create_model("pi-gpt2-tiny-ereg-sm-t-scfuffn", checkpoint_path=weights / "last.safetensors")
    assert model.config.context_length == 64 and model.config.attn_temperature == "learnable"


def test_lambda_eff_of_the_cpu_recipe_is_8e_5():
    from zoo.models.pi_transformer.entropy import EntropyRegularizer

    import zoo

    model = zoo.create_model("pi-gpt2-tiny-ereg-sm-t-scfuffn")
    objective = LMObjective(model, EntropyRegularizer.for_model(model))
    assert objective.lambda_for(32, 64) == pytest.approx(8e-5, rel=1e-12)  # spec §9.2: 1e-5 * 128*128 / (32*64)
    assert LMObjective(model, EntropyRegularizer.for_model(model), scale_lambda=False).lambda_for(32, 64) == 1e-5


def test_param_groups_follow_spec_section_5(cache, small_corpus):
    cfg = load_config(LMTrainConfig, None, dict(model="pi-gpt2-tiny-ereg-sm-t-scfuffn", data=str(small_corpus),
                                                val_fraction=0.2, cache=str(cache), adam_beta2=0.95))
    task = LMTask(cfg)
    from zoo.core.distributed import DistInfo

    task.setup(DistInfo())
    objective = task.build_model()
    groups = {g["name"]: g for g in task.param_groups(objective, 0.1)}
    names = {id(p): n for n, p in objective.named_parameters()}
    decay = {names[id(p)] for p in groups["decay"]["params"]}
    no_decay = {names[id(p)] for p in groups["no_decay"]["params"]} | {names[id(p)] for p in groups["thresholds"]["params"]}
    assert groups["decay"]["weight_decay"] == 0.1 and groups["no_decay"]["weight_decay"] == 0.0
    assert "model.blocks.0.attn.q.weight" in decay and "model.wte.weight" in decay
    for name in ("model.blocks.0.attn.temperature", "model.blocks.0.attn.q.bias", "model.blocks.0.alpha",
                 "model.blocks.0.beta", "regularizer.theta"):
        assert name in no_decay, name
    assert decay | no_decay == set(names.values()) and not decay & no_decay
    assert all(g["betas"] == (0.9, 0.95) for g in groups.values())


@pytest.mark.slow
def test_cpu_recipe_300_steps_spec_11_9(tmp_path, cache):
    """Spec §11.9 with the shipped recipe: 300 steps of SM+LN+G clearly below ln 256; EReg without NaN."""
    recipe = REPO / "configs" / "pi_cpu_tiny.yaml"
    base = train("pi-gpt2-tiny-sm-ln-g", config=recipe, out=str(tmp_path / "base"), cache=str(cache))
    assert base.iterations == 300 and base.metrics["val/ce"] < LN256 - 2.0, base.metrics
    ereg = train("pi-gpt2-tiny-ereg-sm-t-scfuffn", config=recipe, out=str(tmp_path / "ereg"), cache=str(cache))
    steps = _steps(tmp_path / "ereg")
    assert all(math.isfinite(s["ce"]) and math.isfinite(s["ereg"]) for s in steps)
    assert all(v == 0 for s in steps if "nan" in s for v in s["nan"])
    assert math.isfinite(ereg.metrics["val/ce"]) and ereg.metrics["val/ce"] < LN256 - 1.0


# -- resume ---------------------------------------------------------------------------------------------
def _stop_at(k: int):
    def cb(trainer):
        if trainer.iteration == k:
            raise StopTraining
    return cb


def test_resume_after_kill_reproduces_the_loss_sequence_bitwise(tmp_path, cache, small_corpus):
    kw = _tiny(cache, data=str(small_corpus), val_fraction=0.2, max_steps=8, batch=4, context_length=16,
               val_batches=1, metrics_every_steps=3, log_every_steps=1, save_every_steps=1, accumulate=2,
               val_every_steps=4, plots=False)
    name = "pi-gpt2-tiny-ereg-sm-t-scfuffn"  # thresholds, temperatures and the regularizer in the state
    train(name, out=str(tmp_path / "full"), **kw)
    train(name, out=str(tmp_path / "cut"), callbacks={"on_step_end": [_stop_at(5)]}, **kw)
    assert load_state(tmp_path / "cut").iteration == 5
    train(name, resume=tmp_path / "cut")
    full, cut = _steps(tmp_path / "full"), _steps(tmp_path / "cut")
    assert [s["iteration"] for s in full] == list(range(8))
    assert cut == full  # every float of every logged iteration, metrics included
    a, b = load_state(tmp_path / "full"), load_state(tmp_path / "cut")
    assert a.model.keys() == b.model.keys() and all(torch.equal(a.model[k], b.model[k]) for k in a.model)
    assert "regularizer.theta" in a.model
    assert (tmp_path / "full" / "results.csv").read_text() == (tmp_path / "cut" / "results.csv").read_text()


# -- DDP ------------------------------------------------------------------------------------------------

def _ddp_config(cache: str, corpus: str, run_dir: str) -> LMTrainConfig:
    return load_config(LMTrainConfig, None, dict(
        model="pi-gpt2-tiny-ereg-sm-t-scfuffn", data=corpus, val_fraction=0.2, cache=cache, device="cpu",
        batch=8, context_length=16, max_steps=1, val_batches=1, metrics_every_steps=1, seed=3, out=run_dir,
        plots=False))


def _ddp_worker(rank: int, world: int, port: int, cache: str, corpus: str, run_dir: str, out_file: str) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    torch.set_num_threads(1)
    from zoo.core.distributed import cleanup_distributed

    try:
        Trainer(LMTask(_ddp_config(cache, corpus, run_dir)), run_dir,
                callbacks={"on_before_optimizer_step": [grab_grads(Path(out_file))]}).fit()
    finally:
        cleanup_distributed()


def test_two_process_gloo_ddp_step_equals_one_process_on_concatenated_batch(tmp_path, cache, small_corpus):
    one = tmp_path / "one"
    Trainer(LMTask(_ddp_config(str(cache), str(small_corpus), str(one))), one,
            callbacks={"on_before_optimizer_step": [grab_grads(tmp_path / "one.pt")]}).fit()  # also fills the cache
    mp.start_processes(_ddp_worker, args=(2, free_port(), str(cache), str(small_corpus), str(tmp_path / "ddp"),
                                          str(tmp_path / "ddp.pt")), nprocs=2, join=True, start_method="spawn")
    ddp, single = torch.load(tmp_path / "ddp.pt"), torch.load(tmp_path / "one.pt")
    assert ddp.keys() == single.keys() and "regularizer.theta" in single
    for name in single:
        assert single[name].abs().sum() > 0, name
        torch.testing.assert_close(ddp[name], single[name], atol=1e-6, rtol=1e-5)


# -- command line ---------------------------------------------------------------------------------------
def test_zoo_train_cli_trains_a_pi_model_from_the_recipe(tmp_path, cache, small_corpus, capsys):
    from zoo import cli

    if "train" not in cli.COMMANDS:
        pytest.skip("zoo train is not registered in this checkout")
    code = cli.main(["train", "pi-gpt2-tiny-sm-r", "--config", str(REPO / "configs" / "pi_cpu_tiny.yaml"),
                     "--max-steps", "3", "--batch", "4", "--data", str(small_corpus), "--out", str(tmp_path / "r"),
                     "--set", f"cache={cache}", "--set", "val_batches=1", "--set", "val_fraction=0.2",
                     "--set", "context_length=16", "--json"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["iterations"] == 3 and math.isfinite(summary["metrics"]["val/ce"])
    assert Path(summary["last"]).is_file()
