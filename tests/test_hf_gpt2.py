"""GPT-2 interop: the exact preset, importing HF folders (with and without transformers), exporting back.

Expected numbers come from HF ``transformers`` itself (a random ``GPT2LMHeadModel``, never downloaded),
GPT-2's published parameter count, and the closed form of tanh GELU.
"""
from __future__ import annotations

import json
import math

import pytest
import torch

import zoo
from zoo.cli import main
from zoo.core.errors import CheckpointError, ZooError
from zoo.models.pi_transformer.blocks import activation
from zoo.models.pi_transformer.hf_gpt2 import from_hf_state, init_from_hf, to_hf_state

SIZES = dict(vocab_size=97, n_positions=32, n_embd=64, n_layer=2, n_head=4)


def test_gelu_tanh_is_gpt2s_closed_form():
    x = torch.linspace(-6, 6, 1001, dtype=torch.float64)
    want = 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))  # GPT-2's gelu_new
    assert torch.allclose(activation(x, "gelu_tanh", 0.0), want, atol=1e-12)
    assert (activation(x, "gelu_tanh", 0.0) - activation(x, "gelu", 0.0)).abs().max() > 1e-4  # not erf GELU


@pytest.mark.parametrize("name", ["pi-gpt2-tiny-sm-g", "pi-gpt2-tiny-sm-ln-r"])
def test_gelu_tanh_is_an_activation_choice_for_every_variant_and_counted_as_gelu(name):
    model = zoo.create_model(name, ffn_activation="gelu_tanh")
    census = zoo.count_nonlinear(model, torch.zeros(1, 64, dtype=torch.long))
    assert census.by_kind["gelu"] == 4 * 64 * 512  # L * T * d_ff (spec §7)
    assert zoo.nonlinearity_census(model.config, 64).paper_string.endswith("G: 4 × R^{64×512}")


def test_gpt2_small_preset_has_gpt2s_published_parameter_count_and_biases_everywhere():
    assert zoo.model_info("pi-gpt2-small-gpt2").n_params == 124_439_808  # GPT-2 small (HF "gpt2")
    m = zoo.create_model("pi-gpt2-tiny-gpt2")
    b = m.blocks[0]
    assert all(lin.bias is not None for lin in (b.attn.q, b.attn.k, b.attn.v, b.attn.o, b.ffn.fc_in, b.ffn.fc_out))
    assert m.config.ffn_activation == "gelu_tanh" and m.config.norm == "layernorm"


def test_gpt2_init_scales_residual_projections_by_one_over_sqrt_2l():
    torch.manual_seed(0)
    m = zoo.create_model("pi-gpt2-tiny-gpt2", d_model=256, d_ff=1024, n_head=4)  # L=4: 0.02 / sqrt(8)
    resid = torch.cat([torch.cat([b.attn.o.weight.flatten(), b.ffn.fc_out.weight.flatten()]) for b in m.blocks])
    other = torch.cat([b.attn.q.weight.flatten() for b in m.blocks])
    assert resid.std().item() == pytest.approx(0.02 / math.sqrt(8), rel=0.02)
    assert other.std().item() == pytest.approx(0.02, rel=0.02)
    spec = zoo.create_model("pi-gpt2-tiny-sm-ln-g", d_model=256, d_ff=1024)
    assert spec.blocks[0].attn.o.weight.std().item() == pytest.approx(0.02, rel=0.05)  # spec §5: no rescaling


# -- import --------------------------------------------------------------------------------------------
def _random_hf(seed: int = 0, **config):
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(seed)
    cfg = transformers.GPT2Config(**{**SIZES, "bos_token_id": None, "eos_token_id": None, **config})
    hf = transformers.GPT2LMHeadModel(cfg).eval()
    with torch.no_grad():  # HF inits biases to 0 and LayerNorm to (1, 0): randomise so every mapping is tested
        for p in hf.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return hf


@pytest.fixture(scope="module")
def hf_folder(tmp_path_factory):
    hf = _random_hf()
    folder = tmp_path_factory.mktemp("hf") / "gpt2-random"
    hf.save_pretrained(folder)
    return hf, folder


def _greedy(model, prompt: torch.Tensor, steps: int) -> torch.Tensor:
    tokens = prompt
    for _ in range(steps):
        nxt = model(tokens)[:, -1].argmax(-1, keepdim=True)
        tokens = torch.cat([tokens, nxt], 1)
    return tokens


def test_hf_import_matches_transformers_logits_and_greedy_decoding(hf_folder):
    hf, folder = hf_folder
    model = zoo.create_model("pi-gpt2-tiny-gpt2", checkpoint_path=folder)
    assert (model.config.n_layer, model.config.d_model, model.config.vocab_size) == (2, 64, 97)
    x = torch.randint(0, 97, (3, 32), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert (model(x) - hf(x).logits).abs().max().item() <= 1e-5
        prompt = x[:1, :8]
        want = hf.generate(prompt, max_new_tokens=20, do_sample=False, pad_token_id=0)
        assert torch.equal(_greedy(model, prompt, 20), want)


def test_pytorch_model_bin_is_read_with_weights_only(hf_folder, tmp_path):
    hf, folder = hf_folder
    (tmp_path / "config.json").write_text((folder / "config.json").read_text())
    torch.save(hf.state_dict(), tmp_path / "pytorch_model.bin")  # has lm_head.weight and the attn.bias buffers?
    model = zoo.create_model("pi-gpt2-tiny-gpt2", checkpoint_path=tmp_path)
    x = torch.randint(0, 97, (2, 16), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert (model(x) - hf(x).logits).abs().max().item() <= 1e-5


def test_untied_head_and_custom_n_inner_map(tmp_path):
    hf = _random_hf(seed=3, tie_word_embeddings=False, n_inner=48, activation_function="relu")
    hf.save_pretrained(tmp_path)
    model = zoo.create_model("pi-gpt2-tiny-gpt2", checkpoint_path=tmp_path)
    assert model.config.ffn_dim == 48 and not model.config.tie_embeddings and model.config.ffn_activation == "relu"
    x = torch.randint(0, 97, (2, 32), generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        assert (model(x) - hf(x).logits).abs().max().item() <= 1e-5


def test_convert_writes_an_effzoo_file_that_rebuilds_the_model(hf_folder, tmp_path, capsys):
    hf, folder = hf_folder
    out = tmp_path / "gpt2.safetensors"
    assert main(["convert", str(folder), str(out)]) == 0
    model = zoo.create_model("pi-gpt2-tiny-gpt2", checkpoint_path=out)
    x = torch.randint(0, 97, (2, 32), generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        assert (model(x) - hf(x).logits).abs().max().item() <= 1e-5


def _write_config(folder, **changes):
    folder.mkdir(parents=True, exist_ok=True)
    cfg = {"model_type": "gpt2", **SIZES, **changes}
    (folder / "config.json").write_text(json.dumps({k: v for k, v in cfg.items() if v is not None}))


@pytest.mark.parametrize("case, changes, needle", [
    ("no-config", None, "config.json: missing"),
    ("no-weights", {}, "no weights"),
    ("llama", {"model_type": "llama"}, "model_type='llama'"),
    ("layer-idx", {"scale_attn_by_inverse_layer_idx": True}, "scale_attn_by_inverse_layer_idx=True"),
    ("upcast", {"reorder_and_upcast_attn": True}, "reorder_and_upcast_attn=True"),
    ("activation", {"activation_function": "silu"}, "activation_function='silu'"),
])
def test_bad_hf_folders_give_one_line_naming_file_and_field_and_write_nothing(case, changes, needle, tmp_path,
                                                                             capsys):
    folder = tmp_path / case
    if changes is None:
        folder.mkdir()
        (folder / "model.safetensors").write_bytes(b"")
    else:
        _write_config(folder, **changes)
    out = tmp_path / "out.safetensors"
    assert main(["convert", str(folder), str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err and str(folder) in err, err
    assert not out.exists()


def test_vocab_and_context_mismatch_name_the_field(hf_folder):
    _, folder = hf_folder
    with pytest.raises(ZooError, match=r"vocab_size=97 but vocab_size=256 was requested"):
        zoo.create_model("pi-gpt2-tiny-gpt2", checkpoint_path=folder, vocab_size=256)
    with pytest.raises(ZooError, match=r"context_length=32 but context_length=64 was requested"):
        zoo.create_model("pi-gpt2-tiny-gpt2", checkpoint_path=folder, context_length=64)


def test_a_pi_variant_is_refused_strictly_and_pointed_to_the_partial_import(hf_folder):
    _, folder = hf_folder
    with pytest.raises(CheckpointError, match=r"--partial"):
        zoo.create_model("pi-gpt2-tiny-sm-scfuffn", checkpoint_path=folder)


def test_partial_import_into_a_layernorm_free_student_reports_what_stayed_at_init(hf_folder):
    hf, folder = hf_folder
    student = zoo.create_model("pi-gpt2-tiny-sm-scffn", vocab_size=97, n_layer=2, n_head=4, d_model=64, d_ff=256,
                               context_length=32)
    report = init_from_hf(student, folder)
    # sm-scffn: no block LayerNorms, no V/O/FFN biases, learnable alpha/beta per block (spec §3)
    assert sorted(report.left_at_init) == [f"blocks.{i}.{p}" for i in range(2) for p in ("alpha", "beta")]
    hf_sd = hf.state_dict()
    d = 64
    assert torch.equal(student.blocks[1].attn.k.weight, hf_sd["transformer.h.1.attn.c_attn.weight"][:, d:2 * d].t())
    assert torch.equal(student.blocks[0].ffn.fc_out.weight, hf_sd["transformer.h.0.mlp.c_proj.weight"].t())
    assert "blocks.0.ln1.weight" in report.unused and "blocks.0.attn.v.bias" in report.unused


def test_partial_import_cli_reports_left_at_init(hf_folder, tmp_path, capsys):
    _, folder = hf_folder
    out = tmp_path / "student.safetensors"
    assert main(["convert", str(folder), str(out), "--model", "pi-gpt2-tiny-sm-scfuffn", "--partial"]) == 0
    line = capsys.readouterr().out
    assert "left at init" in line and "ffn.fc.weight" in line
    student = zoo.create_model("pi-gpt2-tiny-sm-scfuffn", checkpoint_path=out)
    assert student.config.n_layer == 2


# -- export --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["pi-gpt2-tiny-gpt2", "pi-gpt2-tiny-sm-ln-g"])
def test_export_hf_round_trip_loads_in_transformers_with_identical_logits(name, tmp_path, capsys):
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    model = zoo.create_model(name, vocab_size=97)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    weights = tmp_path / "w.safetensors"
    zoo.save_safetensors(model, weights)
    out = tmp_path / "hf"
    assert main(["export", name, "--weights", str(weights), "--format", "hf", "--out", str(out)]) == 0
    hf = transformers.GPT2LMHeadModel.from_pretrained(out).eval()
    x = torch.randint(0, 97, (2, 64), generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        assert (hf(x).logits - model.eval()(x)).abs().max().item() <= 1e-5


def test_export_refuses_a_variant_gpt2_cannot_express_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "hf"
    assert main(["export", "pi-gpt2-tiny-sm-scfuffn", "--format", "hf", "--out", str(out)]) == 2
    assert "norm='none' has no GPT-2 equivalent" in capsys.readouterr().err
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_state_maps_are_inverse():
    model = zoo.create_model("pi-gpt2-tiny-gpt2")
    back = from_hf_state(to_hf_state(model), 4, 128, True, None)
    assert set(back) == set(model.state_dict())
    assert all(torch.equal(back[k], v) for k, v in model.state_dict().items())
