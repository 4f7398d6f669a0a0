"""Knowledge distillation: the loss against its formula, teacher frozen, exact resume, bad input in one line."""
from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import zoo
from zoo.cli import main
from zoo.engine.distill import distill
from zoo.models.pi_transformer.entropy import causal_uniform_ceiling
from zoo.tasks.base.training import StopTraining
from zoo.tasks.language.distill_objective import DistillObjective, head_entropies, soft_target_kl
from zoo.tasks.language.objective import LMObjective

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_soft_target_kl_is_the_hand_written_kl_of_softened_distributions():
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(2, 5, 11, generator=g), torch.randn(2, 5, 11, generator=g)
    tau = 2.5
    p_t = torch.softmax(t[:, :-1] / tau, -1).double()
    p_s = torch.softmax(s[:, :-1] / tau, -1).double()
    want = (p_t * (p_t.log() - p_s.log())).sum(-1).mean()  # sum over the vocabulary, mean over 2*4 predictions
    assert soft_target_kl(s, t, tau).item() == pytest.approx(want.item(), rel=1e-5)
    assert soft_target_kl(t, t, tau).item() == pytest.approx(0.0, abs=1e-6)


def test_head_entropy_of_uniform_causal_attention_is_the_spec_ceiling():
    T = 64
    a = torch.tril(torch.ones(T, T))
    a = (a / a.sum(-1, keepdim=True)).expand(2, 3, T, T)  # (B, H, T, T)
    e = head_entropies([a, a])
    assert e.shape == (2, 3) and torch.allclose(e, torch.full((2, 3), 3.2058), atol=1e-4)  # spec §6.1
    assert causal_uniform_ceiling(T) == pytest.approx(3.2058, abs=1e-4)


def test_total_loss_is_one_minus_alpha_ce_plus_alpha_tau2_kl_plus_entropy_term():
    torch.manual_seed(0)
    student = zoo.create_model("pi-gpt2-tiny-sm-scfuffn")
    teacher = zoo.create_model("pi-gpt2-tiny-sm-ln-g").eval()
    tokens = torch.randint(0, 256, (2, 16), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        t_out = teacher(tokens, return_attn=True)
    alpha, tau, w = 0.3, 2.0, 0.7
    obj = DistillObjective(LMObjective(student), alpha=alpha, tau=tau, attn_entropy_weight=w)
    out = obj(tokens, False, t_out.logits, head_entropies(t_out.attn))
    s_out = student(tokens, return_attn=True)
    ce = F.cross_entropy(s_out.logits[:, :-1].reshape(-1, 256), tokens[:, 1:].reshape(-1))
    match = ((head_entropies(s_out.attn) - head_entropies(t_out.attn)) ** 2).mean()
    want = (1 - alpha) * ce + alpha * tau ** 2 * soft_target_kl(s_out.logits, t_out.logits, tau) + w * match
    assert out.loss.item() == pytest.approx(want.item(), rel=1e-5)
    assert out.ce.item() == pytest.approx(ce.item(), rel=1e-6) and out.attn_match.item() > 0
    plain = DistillObjective(LMObjective(student), alpha=0.0, tau=tau, attn_entropy_weight=0.0)
    assert plain(tokens, False, t_out.logits).loss.item() == pytest.approx(ce.item(), rel=1e-6)


# -- end to end on a small local corpus -----------------------------------------------------------------
@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("kd")
    train, val = root / "train", root / "val"
    for folder, files in ((train, sorted((REPO / "zoo" / "engine").glob("*.py"))),
                          (val, sorted((REPO / "zoo" / "core").glob("*.py"))[:4])):
        folder.mkdir()
        for f in files:
            shutil.copy(f, folder / f.name)
    teacher = root / "teacher.safetensors"
    torch.manual_seed(0)
    zoo.save_safetensors(zoo.create_model("pi-gpt2-tiny-sm-ln-g", context_length=32), teacher)
    return dict(root=root, cache=str(root / "cache"), teacher=teacher,
                keys=dict(data=str(train), val_data=str(val), context_length=32, batch=4, val_batches=2,
                          warmup_steps=2, metrics_every_steps=0, val_every_steps=0, save_every_steps=0,
                          device="cpu", cache=str(root / "cache"), plots=False))


def _steps(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "steps.jsonl").read_text().splitlines()]


def test_distill_run_keeps_the_teacher_frozen_and_reports_its_perplexity(corpus, tmp_path):
    seen = {}

    def check_teacher(trainer):
        teacher = trainer.task.teacher
        seen["eval"] = not teacher.training
        seen["grads"] = [p.grad for p in teacher.parameters() if p.grad is not None]
        seen["in_optimizer"] = any(p is q for g in trainer.optimizer.param_groups for p in g["params"]
                                   for q in teacher.parameters())

    def keep_teacher(trainer):
        seen["final"] = {k: v.clone() for k, v in trainer.task.teacher.state_dict().items()}

    result = distill("pi-gpt2-tiny-sm-scfuffn", teacher="pi-gpt2-tiny-sm-ln-g", teacher_weights=corpus["teacher"],
                     config=REPO / "configs" / "pi_distill_tiny.yaml", out=str(tmp_path / "run"), max_steps=4,
                     attn_entropy_weight=0.1, callbacks={"on_before_optimizer_step": [check_teacher],
                                                         "on_train_end": [keep_teacher]}, **corpus["keys"])
    final = seen.pop("final")
    assert seen == {"eval": True, "grads": [], "in_optimizer": False}
    original = zoo.create_model("pi-gpt2-tiny-sm-ln-g", checkpoint_path=corpus["teacher"]).state_dict()
    assert all(torch.equal(final[k], v) for k, v in original.items())  # 4 optimizer steps left the teacher as is
    assert result.metrics["val/teacher_ppl"] == pytest.approx(math.exp(result.metrics["val/teacher_ce"]))
    steps = _steps(tmp_path / "run")
    assert {"ce", "kd", "attn_match"} <= set(steps[0]) and steps[0]["kd"] > 0
    student = zoo.create_model("pi-gpt2-tiny-sm-scfuffn", checkpoint_path=result.last)  # a plain student file
    assert student.config.context_length == 32


def test_interrupted_distillation_resumes_bit_for_bit(corpus, tmp_path):
    kw = dict(teacher="pi-gpt2-tiny-sm-ln-g", teacher_weights=corpus["teacher"],
              config=REPO / "configs" / "pi_distill_tiny.yaml", max_steps=6, log_every_steps=1, **corpus["keys"])
    distill("pi-gpt2-tiny-sm-scfuffn", out=str(tmp_path / "full"), **kw)

    def stop_at_3(trainer):
        if trainer.iteration == 3:
            raise StopTraining

    distill("pi-gpt2-tiny-sm-scfuffn", out=str(tmp_path / "cut"), callbacks={"on_step_end": [stop_at_3]}, **kw)
    distill(resume=str(tmp_path / "cut"))
    full = [(s["iteration"], s["loss"]) for s in _steps(tmp_path / "full")]
    cut = [(s["iteration"], s["loss"]) for s in _steps(tmp_path / "cut")]
    assert cut == full and len(full) == 6


def _cli(corpus, tmp_path, *extra: str) -> list[str]:
    k = corpus["keys"]
    sets = [f"--set={key}={k[key]}" for key in ("data", "val_data", "context_length", "batch", "val_batches", "cache")]
    return ["distill", "--student", "pi-gpt2-tiny-sm-scfuffn", "--config", str(REPO / "configs" / "pi_distill_tiny.yaml"),
            "--max-steps", "2", "--out", str(tmp_path / "run"), *sets, *extra]


def test_teacher_with_another_vocabulary_is_one_line_naming_file_and_field(corpus, tmp_path, capsys):
    bad = tmp_path / "teacher-300.safetensors"
    zoo.save_safetensors(zoo.create_model("pi-gpt2-tiny-sm-ln-g", vocab_size=300), bad)
    assert main(_cli(corpus, tmp_path, "--teacher", "pi-gpt2-tiny-sm-ln-g", "--teacher-weights", str(bad))) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(bad) in err and "vocab_size=300" in err and "vocab_size=256" in err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("extra, needle", [
    (["--set", "alpah=0.3"], "Did you mean 'alpha'"),
    (["--alpha", "1.5"], "alpha=1.5 is out of range"),
    (["--tau", "0"], "tau=0.0 is out of range"),
])
def test_bad_recipe_keys_are_refused_like_other_recipes(extra, needle, corpus, tmp_path, capsys):
    args = _cli(corpus, tmp_path, "--teacher", "pi-gpt2-tiny-sm-ln-g", "--teacher-weights", str(corpus["teacher"]),
                *extra)
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err, err
    assert not (tmp_path / "run").exists()


def test_missing_teacher_and_mismatched_heads_are_refused(corpus, tmp_path, capsys):
    assert main(_cli(corpus, tmp_path)) == 2
    assert "teacher is empty" in capsys.readouterr().err
    other = tmp_path / "teacher-l2.safetensors"
    zoo.save_safetensors(zoo.create_model("pi-gpt2-tiny-sm-ln-g", n_layer=2, context_length=32), other)
    assert main(_cli(corpus, tmp_path, "--teacher", "pi-gpt2-tiny-sm-ln-g", "--teacher-weights", str(other),
                     "--set", "attn_entropy_weight=0.5")) == 2
    assert "n_layer=2" in capsys.readouterr().err


def test_student_init_from_the_teacher_copies_what_fits_and_leaves_the_rest(corpus, tmp_path):
    seen = {}

    def capture(trainer):
        student, teacher = trainer.model.model, trainer.task.teacher
        seen["wte"] = torch.equal(student.wte.weight, teacher.wte.weight)
        seen["q"] = torch.equal(student.blocks[1].attn.q.weight, teacher.blocks[1].attn.q.weight)
        seen["fc"] = student.blocks[0].ffn.fc.weight.shape  # the fused d x d FFN has no teacher counterpart

    distill("pi-gpt2-tiny-sm-scfuffn", teacher="pi-gpt2-tiny-sm-ln-g", teacher_weights=corpus["teacher"],
            config=REPO / "configs" / "pi_distill_tiny.yaml", out=str(tmp_path / "run"), max_steps=2,
            student_init="teacher", callbacks={"on_train_start": [capture]}, **corpus["keys"])
    assert seen == {"wte": True, "q": True, "fc": (128, 128)}
