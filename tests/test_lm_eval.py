"""Perplexity evaluator, ``zoo eval-lm``, the PI study table and the cached ``measured_perplexity``."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from zoo.eval.corpus import split_of
from zoo.eval.lm import evaluate_perplexity

import zoo
from zoo.core.errors import DataError

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# -- evaluator ------------------------------------------------------------------------------------------
def test_uniform_model_has_perplexity_equal_to_vocabulary():
    tokens = torch.randint(0, 50, (7, 9))
    result = evaluate_perplexity(lambda x: torch.zeros(*x.shape, 50), tokens, batch_size=3)
    assert result.ce == pytest.approx(math.log(50), abs=1e-6) and result.perplexity == pytest.approx(50.0)
    assert (result.chunks, result.tokens, result.input_tokens, result.seq_len) == (7, 7 * 8, 7 * 9, 9)


def test_perfect_next_token_model_has_perplexity_one_and_numpy_outputs_work():
    def oracle(x):
        logits = np.full((*x.shape, 20), -30.0, dtype=np.float32)
        nxt = x[:, 1:].numpy()
        for b in range(x.shape[0]):
            logits[b, np.arange(x.shape[1] - 1), nxt[b]] = 30.0
        return (logits,)  # tuple of numpy arrays, as an ONNX runtime session returns

    result = evaluate_perplexity(oracle, torch.randint(0, 20, (5, 6)), batch_size=2)
    assert result.perplexity == pytest.approx(1.0, abs=1e-9)


def test_known_two_way_model_gives_perplexity_two():
    # p(correct) = 1/2 everywhere: two ids share all the mass -> CE = ln 2
    def half(x):
        logits = torch.full((*x.shape, 4), -1e9)
        logits[..., 0] = 0.0
        logits[..., 1] = 0.0
        return logits

    tokens = torch.randint(0, 2, (4, 5))
    assert evaluate_perplexity(half, tokens).perplexity == pytest.approx(2.0)


def test_numpy_inputs_and_empty_split():
    seen = []

    def model(x):
        seen.append(type(x))
        return torch.zeros(*x.shape, 8)

    evaluate_perplexity(model, torch.zeros(2, 4, dtype=torch.long), numpy_inputs=True)
    assert seen == [np.ndarray]
    with pytest.raises(DataError, match="No T-token chunks"):
        evaluate_perplexity(model, torch.zeros(0, 4, dtype=torch.long))


def test_module_is_evaluated_in_eval_mode_and_restored():
    model = zoo.create_model("pi-gpt2-tiny-sm-ln-g", embd_dropout=0.5)
    model.train()
    tokens = torch.randint(0, 256, (4, 16))
    a = evaluate_perplexity(model, tokens).ce
    b = evaluate_perplexity(model, tokens).ce
    assert a == b and model.training  # dropout off during evaluation, train mode given back


# -- zoo eval-lm ----------------------------------------------------------------------------------------
def _untrained_weights(tmp_path: Path, name: str = "pi-gpt2-tiny-sm-ln-g", **overrides) -> Path:
    model = zoo.create_model(name, **overrides)
    return zoo.save_safetensors(model, tmp_path / "w.safetensors", overrides=model.checkpoint_overrides())


def test_eval_lm_json_reports_perplexity_tokens_and_chunks(tmp_path, capsys):
    from zoo import cli

    source = Path(json.__file__).read_text(encoding="utf-8")  # real code, cut into 100 small files
    corpus = tmp_path / "corpus"
    for i in range(100):
        (corpus / f"pkg{i}").mkdir(parents=True)
        (corpus / f"pkg{i}" / "mod.py").write_text(source[i * 90:i * 90 + 500 + 7 * i], encoding="utf-8")
    weights = _untrained_weights(tmp_path, context_length=32)
    args = ["eval-lm", "pi-gpt2-tiny-sm-ln-g", "--weights", str(weights), "--corpus", str(corpus), "--cache",
            str(tmp_path / "cache"), "--device", "cpu"]
    assert cli.main([*args, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    held_out = [corpus / f"pkg{i}" / "mod.py" for i in (39, 52, 94)]  # the 2 % hash split of these keys
    assert all(split_of(p.relative_to(corpus).as_posix(), 0.02) == "val" for p in held_out)
    chunks = sum(len(p.read_bytes()) // 32 for p in held_out)  # full 32-byte chunks per held-out file
    assert out["chunks"] == chunks > 0 and out["tokens"] == chunks * 31 and out["seq_len"] == 32
    assert 200 < out["perplexity"] < 330  # an untrained byte model is close to uniform over 256 ids
    assert out["perplexity"] == pytest.approx(math.exp(out["ce"]))
    assert cli.main([*args, "--max-chunks", "5"]) == 0
    assert "5 chunks of T=32, 155 predicted tokens" in capsys.readouterr().out


def test_eval_lm_without_tokenizer_for_a_bpe_model_is_a_one_line_error(tmp_path, small_corpus, capsys):
    from zoo import cli

    weights = _untrained_weights(tmp_path, vocab_size=512)
    code = cli.main(["eval-lm", "pi-gpt2-tiny-sm-ln-g", "--weights", str(weights), "--corpus", str(small_corpus)])
    err = capsys.readouterr().err
    assert code == 2 and "pass --tokenizer FILE" in err and len(err.strip().splitlines()) == 1


# -- study ----------------------------------------------------------------------------------------------
def test_orderings_report_holds_fails_and_missing():
    from zoo.studies.pi_study import VariantResult
    from zoo.studies.pi_study_table import check_orderings, markdown_table

    def row(variant, ppl, overload=0.1, collapse=0.1, diverged=False):
        return VariantResult(name=f"pi-gpt2-tiny-{variant}", variant=variant, paper_name=variant.upper(),
                             perplexity=ppl, ce=None if ppl is None else math.log(ppl), tokens=10, chunks=1,
                             seq_len=11, diverged=diverged, nan_steps=0, n_params=1, census="SM", nonlinear_elements=1,
                             ffn_flops=1, attn_flops=1, flops_string="", comm_gb=1.0, latency_min=1.0,
                             savings_comm=1.0, savings_latency=1.0, cost_provenance="estimated",
                             headwise_bins=[0.25] * 4, overload=overload, collapse=collapse, train_seconds=0.0,
                             steps=1, weights="")

    rows = [row("sm-ln-g", 3.0), row("sm-ln-r", 2.9), row("sm-g", 4.0, overload=0.6), row("sm", None, diverged=True)]
    checks = {c["claim"]: c["holds"] for c in check_orderings(rows)}
    assert checks["GELU beats ReLU with LayerNorm"] is False  # 3.0 vs 2.9: ReLU won here
    assert checks["LayerNorm helps a GELU model"] is True
    assert checks["LN-free GELU overloads more heads than the baseline"] is True
    assert checks["without LayerNorm ReLU beats GELU"] is None  # sm-r was not trained
    assert checks["softmax-only (no LayerNorm, no FFN nonlinearity) diverges"] is True
    table = markdown_table(rows)
    assert "| SM-LN-R | 2.900 | -3.3 % |" in table and "NaN (diverged)" in table


def test_mini_study_writes_table_with_spec_census_numbers(tmp_path, small_corpus):
    from zoo.studies.pi_study import run_pi_study

    run_pi_study(None, size="tiny", variants=["sm-ln-g", "sm-scfuffn"], out=tmp_path / "study",
                          progress=False, data=str(small_corpus), val_fraction=0.2, cache=str(tmp_path / "cache"),
                          max_steps=3, batch=4, context_length=16, val_batches=1, warmup_steps=1,
                          metrics_every_steps=0, device="cpu", entropy_chunks=8, eval_chunks=64)
    data = json.loads((tmp_path / "study" / "study.json").read_text())
    rows = {r["variant"]: r for r in data["rows"]}
    L, H, T, d, d_ff = 4, 4, 16, 128, 512  # tiny preset, T = 16
    base, fused = rows["sm-ln-g"], rows["sm-scfuffn"]
    assert base["nonlinear_elements"] == L * H * T * T + 2 * L * T * d + L * T * d_ff
    assert fused["nonlinear_elements"] == L * H * T * T
    assert base["ffn_flops"] == L * 2 * (2 * T * d * d_ff) and fused["ffn_flops"] == L * 2 * T * d * d
    assert base["attn_flops"] == fused["attn_flops"] == L * (8 * T * d * d + 3 * T * T * d)
    assert base["savings_comm"] == pytest.approx(1.0) and fused["savings_comm"] > 1.0
    assert all(math.isfinite(r["perplexity"]) and r["steps"] == 3 and r["chunks"] == 64 for r in rows.values())
    assert sum(base["headwise_bins"]) == pytest.approx(1.0)
    md = (tmp_path / "study" / "study.md").read_text()
    assert "| SM+LN+G |" in md and "| SM+ScFuFFN |" in md and "Published orderings" in md
    assert (tmp_path / "study" / "headwise_distribution.png").stat().st_size > 1000
    # a second call reuses the finished runs instead of training again
    again = run_pi_study(None, size="tiny", variants=["sm-ln-g"], out=tmp_path / "study", progress=False,
                         data=str(small_corpus), val_fraction=0.2, cache=str(tmp_path / "cache"), max_steps=3,
                         batch=4, context_length=16, val_batches=1, warmup_steps=1, metrics_every_steps=0,
                         device="cpu", entropy_chunks=8, eval_chunks=64)
    assert again.rows[0].perplexity == base["perplexity"]


def test_measured_perplexity_is_cached_by_settings(tmp_path, small_corpus, monkeypatch):
    import zoo.studies.pi_study as study

    kw = dict(max_steps=2, batch=4, context_length=16, data=str(small_corpus), val_fraction=0.2,
              cache_dir=tmp_path / "cache", val_batches=1, warmup_steps=1, metrics_every_steps=0, eval_chunks=64)
    ppl = study.measured_perplexity("pi-gpt2-tiny-sm-r", **kw)
    assert 20 < ppl < 400

    def no_training(*a, **k):
        raise AssertionError("should have come from the cache")

    monkeypatch.setattr(study, "_train", no_training)
    assert study.measured_perplexity("pi-gpt2-tiny-sm-r", **kw) == ppl
    with pytest.raises(AssertionError, match="from the cache"):
        study.measured_perplexity("pi-gpt2-tiny-sm-r", **{**kw, "seed": 1})


def test_eval_lm_on_an_exported_onnx_file_matches_the_eager_model(tmp_path):
    from zoo.export import export_onnx

    from zoo.tasks.language.evaluate import evaluate_lm

    source = Path(json.__file__).read_text(encoding="utf-8")
    corpus = tmp_path / "corpus"
    for i in range(100):
        (corpus / f"pkg{i}").mkdir(parents=True)
        (corpus / f"pkg{i}" / "mod.py").write_text(source[i * 90:i * 90 + 500], encoding="utf-8")
    weights = _untrained_weights(tmp_path, context_length=32)
    onnx_file = tmp_path / "tiny.onnx"
    export_onnx("pi-gpt2-tiny-sm-ln-g", target="cpu", weights=weights, seq_len=32, out=onnx_file)
    kw = dict(data=str(corpus), cache_dir=tmp_path / "cache", device="cpu")
    eager = evaluate_lm("pi-gpt2-tiny-sm-ln-g", weights, **kw)
    onnx = evaluate_lm("pi-gpt2-tiny-sm-ln-g", onnx_file, **kw)
    assert onnx["chunks"] == eager["chunks"] == 3 * (500 // 32) and onnx["seq_len"] == 32
    assert onnx["perplexity"] == pytest.approx(eager["perplexity"], rel=1e-5)
