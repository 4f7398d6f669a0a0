"""PI-GPT model: registry entries, forward/backward, attention paths, temperature, folding, checkpoints."""
from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from zoo.models.pi_transformer.blocks import SpectralNormLinear, WeightNormLinear
from zoo.models.pi_transformer.census import param_count
from zoo.models.pi_transformer.config import PIConfig
from zoo.models.pi_transformer.entropy import causal_uniform_ceiling, entropy_from_attention
from zoo.models.pi_transformer.model import PIGPT, next_token_loss
from zoo.models.pi_transformer.variants import VARIANTS

import zoo

TINY = zoo.list_models("pi-gpt2-tiny-*")
SIZES = ("small", "small-l18", "tiny")

# Configs beyond the registered presets that exercise every remaining switch of spec §2.
EXTRA_CONFIGS = {
    "temperature-head": dict(norm="none", ffn_activation="identity", ffn_fused=True, ffn_scaling="learnable",
                             attn_temperature="learnable", temperature_shape="head", qk_bias=True),
    "leaky": dict(norm="none", ffn_activation="leaky_relu", leaky_slope=0.1),
    "learnable-leaky-global": dict(norm="none", ffn_activation="learnable_leaky_relu",
                                   learnable_slope_mode="global"),
    "learnable-leaky-per-layer": dict(norm="none", ffn_activation="learnable_leaky_relu", leaky_slope=0.05),
    "pruned-i2": dict(norm="none", ffn_activation="identity", ffn_fused=True, ffn_scaling="learnable", ffn_layers=2),
    "wn-qkvo-ffn-biases": dict(norm="weightnorm", norm_targets=("q", "k", "v", "o", "ffn"),
                               ffn_activation="identity", vo_bias=True, ffn_bias=True),
    "sn-qk-ffn-untied": dict(norm="spectralnorm", norm_targets=("q", "k", "ffn"), ffn_activation="identity",
                             tie_embeddings=False, final_norm="none"),
    "fixed-scaling-relu": dict(norm="none", ffn_activation="relu", ffn_scaling="fixed",
                               ffn_scale_alpha_init=2.0, ffn_scale_beta_init=0.5),
}


def _tokens(B: int = 2, T: int = 64, V: int = 256, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, V, (B, T), generator=torch.Generator().manual_seed(seed))


def _perturb(model: PIGPT) -> PIGPT:
    """Move scalars and gains away from their inits so that folding them is not trivially exact."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(("alpha", "beta", "slope", "weight_g", "temperature")):
                p.mul_(1 + 0.5 * torch.rand(p.shape, generator=g))
            if name.endswith("bias"):
                p.add_(0.02 * torch.randn(p.shape, generator=g))
    return model


def test_registry_has_three_sizes_times_twelve_variants_with_spec_names():
    names = [n for n in zoo.list_models("pi-gpt2-*") if not n.endswith("-gpt2")]  # + the exact GPT-2 presets
    assert len(names) == 36 and len(VARIANTS) == 12
    assert zoo.list_models("pi-gpt2-*-gpt2") == ["pi-gpt2-small-gpt2", "pi-gpt2-small-l18-gpt2", "pi-gpt2-tiny-gpt2"]
    for size in SIZES:
        for variant in ("sm-ln-g", "sm-ln-r", "sm-ln", "sm-g", "sm-r", "sm", "sm-wn-ffn", "sm-sn-ffn", "sm-scffn",
                        "sm-scfuffn", "sm-t-scfuffn", "ereg-sm-t-scfuffn"):
            card = zoo.model_info(f"pi-gpt2-{size}-{variant}")
            assert card.family == "pi_transformer" and card.task == "language-modeling"
            assert card.input_size == (64 if size == "tiny" else 128)
    assert zoo.model_info("pi-gpt2-small-sm-ln-g").paper["ppl@128"] == pytest.approx(2.688)
    assert zoo.model_info("pi-gpt2-small-ereg-sm-t-scfuffn").paper == {"ppl@128": 3.21, "ppl@256": 2.92}
    assert zoo.model_info("pi-gpt2-small-l18-sm-scfuffn").paper == {"ppl@128": 3.24}
    assert "Table 8" in zoo.model_info("pi-gpt2-small-l18-sm-scfuffn").source


def test_unknown_name_and_unknown_override_suggest_the_closest():
    with pytest.raises(zoo.ZooError, match="Did you mean 'pi-gpt2-tiny-sm-ln-g'"):
        zoo.create_model("pi-gpt2-tiny-sm-ln-gg")
    with pytest.raises(ValueError, match="Did you mean 'context_length'"):
        zoo.create_model("pi-gpt2-tiny-sm", context_lenght=32)


def test_baseline_param_count_matches_the_spec_formula_124_177_920():
    # V = 50,000, n_positions = 1,024, GPT-2 small SM+LN+G (spec §7), counted on the meta device
    with torch.device("meta"):
        model = zoo.create_model("pi-gpt2-small-sm-ln-g", vocab_size=50_000, n_positions=1024)
    assert sum(p.numel() for p in model.parameters()) == 124_177_920
    assert param_count(model.config).model == 124_177_920


@pytest.mark.parametrize("name", zoo.list_models("pi-gpt2-*"))
def test_every_variant_builds_on_meta_and_card_params_equal_the_formula(name):
    card = zoo.model_info(name)
    with torch.device("meta"):
        model = card.builder()
    assert card.n_params == param_count(model.config).model  # the card's count against the §7 closed form
    assert param_count(model.config).thresholds == model.config.n_layer * model.config.n_head


@pytest.mark.parametrize("extra", sorted(EXTRA_CONFIGS))
def test_param_formula_covers_every_switch(extra):
    cfg = PIConfig.tiny(**EXTRA_CONFIGS[extra])
    with torch.device("meta"):
        model = PIGPT(cfg)
    assert sum(p.numel() for p in model.parameters()) == param_count(cfg).model


def test_spec_cpu_recipe_sizes_are_about_0_83m_and_0_37m():
    assert round(zoo.model_info("pi-gpt2-tiny-sm-ln-g").n_params / 1e6, 2) == 0.83
    assert round(zoo.model_info("pi-gpt2-tiny-sm-t-scfuffn").n_params / 1e6, 2) == 0.37


@pytest.mark.parametrize("name", TINY)
def test_tiny_variant_forward_backward_reaches_every_parameter(name):
    model = zoo.create_model(name)
    x = _tokens()
    logits = model(x)
    assert logits.shape == (2, 64, 256) and torch.isfinite(logits).all()
    loss = next_token_loss(logits, x)
    assert abs(loss.item() - math.log(256)) < 0.5  # near-uniform predictions at init
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing, f"no/invalid gradient for {missing}"
    assert all(p.grad.abs().sum() > 0 for p in model.parameters())


@pytest.mark.parametrize("size, variant", [("small-l18", "ereg-sm-t-scfuffn")])  # small: see the census tests
def test_large_presets_build_and_run_a_short_forward(size, variant):
    model = zoo.create_model(f"pi-gpt2-{size}-{variant}", vocab_size=512)
    with torch.no_grad():
        logits = model(_tokens(1, 8, 512))
    assert logits.shape == (1, 8, 512) and torch.isfinite(logits).all()


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in zoo.list_models("pi-gpt2-*") if "-tiny-" not in n])
def test_large_preset_forward_backward_reaches_every_parameter(name):
    model = zoo.create_model(name, vocab_size=512)
    x = _tokens(1, 16, 512)
    next_token_loss(model(x), x).backward()
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize("name", TINY + [f"extra:{k}" for k in sorted(EXTRA_CONFIGS)])
def test_sdpa_and_explicit_attention_agree(name):
    model = PIGPT(PIConfig.tiny(**EXTRA_CONFIGS[name[6:]])) if name.startswith("extra:") else zoo.create_model(name)
    model = _perturb(model).eval()
    x = _tokens()
    with torch.no_grad():
        fast = model(x)
        out = model(x, return_attn=True)
    torch.testing.assert_close(out.logits, fast, atol=2e-5, rtol=1e-4)
    cfg = model.config
    assert len(out.attn) == cfg.n_layer
    assert all(a.shape == (2, cfg.n_head, 64, 64) and a.dtype == torch.float32 for a in out.attn)


@pytest.mark.parametrize("name, tau", [("pi-gpt2-tiny-sm-ln-g", None), ("pi-gpt2-tiny-sm-t-scfuffn", 1e-8)])
def test_masked_attention_entries_are_exactly_zero_and_entropies_have_no_nan(name, tau):
    # spec §11.8; with a tiny temperature the rows saturate, giving exact zeros below the diagonal too
    model = zoo.create_model(name).eval()
    with torch.no_grad():
        if tau is not None:
            for block in model.blocks:
                block.attn.temperature.fill_(tau)
        attn = model(_tokens(), return_attn=True).attn
    upper = torch.ones(64, 64, dtype=torch.bool).triu(1)
    for a in attn:
        assert a.dtype == torch.float32
        assert torch.equal(a[..., upper], torch.zeros_like(a[..., upper]))
        torch.testing.assert_close(a.sum(-1), torch.ones_like(a.sum(-1)))
    report = entropy_from_attention(attn)
    assert torch.isfinite(report.head).all() and report.nan_counts.sum() == 0
    if tau is not None:
        assert (attn[0][..., ~upper] == 0).float().mean() > 0.5  # saturated: most valid entries are exact zeros


def test_temperature_one_equals_the_model_without_temperature():
    # spec §11.3: tau == 1 must be the identity
    plain = zoo.create_model("pi-gpt2-tiny-sm-scfuffn")
    tempered = zoo.create_model("pi-gpt2-tiny-sm-t-scfuffn", temperature_init=1.0)
    missing, unexpected = tempered.load_state_dict(plain.state_dict(), strict=False)
    assert sorted(missing) == [f"blocks.{i}.attn.temperature" for i in range(4)] and not unexpected
    x = _tokens()
    for return_attn in (False, True):
        a, b = plain.eval()(x, return_attn=return_attn), tempered.eval()(x, return_attn=return_attn)
        if return_attn:
            a, b = a.logits, b.logits
        assert torch.equal(a, b)


def test_attention_probabilities_stay_float32_under_autocast():
    model = zoo.create_model("pi-gpt2-tiny-sm-t-scfuffn").eval()
    x = _tokens()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x, return_attn=True)
        fast = model(x)
    upper = torch.ones(64, 64, dtype=torch.bool).triu(1)
    for a in out.attn:
        assert a.dtype == torch.float32 and torch.equal(a[..., upper], torch.zeros_like(a[..., upper]))
        torch.testing.assert_close(a.sum(-1), torch.ones_like(a.sum(-1)))
    torch.testing.assert_close(out.logits.float(), fast.float(), atol=0.05, rtol=0.05)


@pytest.mark.parametrize("shape", ["head_position", "head"])
def test_temperature_limits_give_uniform_and_one_hot_entropies(shape):
    # spec §11.3: tau -> large gives the causal-uniform ceiling, tau -> small gives 0
    model = zoo.create_model("pi-gpt2-tiny-sm-t-scfuffn", temperature_shape=shape).eval()
    x = _tokens()
    for tau, expected in ((1e8, causal_uniform_ceiling(64)), (1e-20, 0.0)):  # 1e-20: no near-ties survive
        with torch.no_grad():
            for block in model.blocks:
                block.attn.temperature.fill_(tau)
            head = entropy_from_attention(model(x, return_attn=True).attn).head
        assert torch.allclose(head, torch.full_like(head, expected), atol=1e-4), (tau, head)


def test_shorter_sequences_use_the_first_temperature_entries_and_longer_ones_fail():
    model = zoo.create_model("pi-gpt2-tiny-sm-t-scfuffn").eval()
    with torch.no_grad():
        model.blocks[0].attn.temperature[:, 32:] = 123.0  # positions >= 32 must not matter for T = 32
        a = model(_tokens(T=32))
        model.blocks[0].attn.temperature[:, 32:] = 0.5
        assert torch.equal(a, model(_tokens(T=32)))
    with pytest.raises(ValueError, match="exceeds n_positions=64; build the model with context_length >= 65"):
        model(_tokens(T=65))
    with pytest.raises(ValueError, match="exceeds the temperature table"):
        zoo.create_model("pi-gpt2-tiny-sm-t-scfuffn", n_positions=128)(_tokens(T=65))


@pytest.mark.parametrize("name", TINY + [f"extra:{k}" for k in sorted(EXTRA_CONFIGS)])
def test_fold_keeps_outputs_and_drops_training_only_parameters(name):
    model = PIGPT(PIConfig.tiny(**EXTRA_CONFIGS[name[6:]])) if name.startswith("extra:") else zoo.create_model(name)
    model = _perturb(model)
    x = _tokens()
    with torch.no_grad():
        model.train()
        model(x)  # a training step moves the spectral-norm vectors; eval must then use the frozen ones
        model.eval()
        reference = model(x)
        folded = model.fold()
        torch.testing.assert_close(folded(x), reference, atol=2e-5, rtol=1e-4)
    assert not folded.training and folded.is_fused
    assert not any(isinstance(m, (WeightNormLinear, SpectralNormLinear)) for m in folded.modules())
    names = [n for n, _ in folded.named_parameters()]
    assert not [n for n in names if n.endswith(("alpha", "beta", "temperature", "slope", "weight_g", "weight_v"))]
    assert all(not p.requires_grad for p in folded.parameters())
    cfg = folded.config
    assert cfg.norm in ("layernorm", "none") and cfg.ffn_scaling in ("none", "fixed")
    assert not cfg.entropy_reg.enabled
    if model.config.ffn_activation == "identity":  # identity FFNs are fused into one d x d matrix
        assert cfg.ffn_fused and all(not b.has_ffn or hasattr(b.ffn, "fc") for b in folded.blocks)


def test_fused_ffn_built_from_an_identity_ffn_gives_the_same_output():
    # spec §11.4: W_ffn = W_in . W_out, loaded into a separately built fused model
    unfused = _perturb(zoo.create_model("pi-gpt2-tiny-sm-scffn")).eval()
    fused = zoo.create_model("pi-gpt2-tiny-sm-scfuffn").eval()
    state = {k: v for k, v in unfused.state_dict().items() if ".ffn." not in k}
    for i, block in enumerate(unfused.blocks):
        state[f"blocks.{i}.ffn.fc.weight"] = block.ffn.fc_out.weight @ block.ffn.fc_in.weight  # (C, C)
    fused.load_state_dict(state, strict=True)
    x = _tokens()
    with torch.no_grad():
        torch.testing.assert_close(fused(x), unfused(x), atol=2e-5, rtol=1e-4)


def test_weight_norm_starts_as_the_plain_initialisation():
    layer = WeightNormLinear(8, 4, bias=False)
    layer.reset_parameters(0.02)
    torch.testing.assert_close(layer.weight, layer.weight_v)


def test_spectral_norm_weight_has_unit_spectral_norm_after_power_iterations():
    layer = SpectralNormLinear(32, 16, bias=True)
    layer.reset_parameters(0.02)
    assert torch.linalg.matrix_norm(layer.weight.detach(), ord=2).item() == pytest.approx(1.0, rel=1e-3)


def test_optimizer_groups_decay_only_2d_weights():
    model = zoo.create_model("pi-gpt2-tiny-ereg-sm-t-scfuffn")
    decay, no_decay = model.optimizer_groups(0.1)
    names = {id(p): n for n, p in model.named_parameters()}
    decayed = sorted(names[id(p)] for p in decay["params"])
    assert all(n.endswith("weight") for n in decayed) and not any("ln" in n for n in decayed)
    assert {names[id(p)].rsplit(".", 1)[-1] for p in no_decay["params"]} == {"alpha", "beta", "temperature", "bias",
                                                                            "weight"}  # weight = final LayerNorm
    assert no_decay["weight_decay"] == 0.0 and decay["weight_decay"] == 0.1
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))


def test_safetensors_round_trip_rebuilds_shapes_from_metadata(tmp_path):
    from zoo.core.checkpoint import save_safetensors

    model = _perturb(zoo.create_model("pi-gpt2-tiny-sm-t-scfuffn", context_length=32, vocab_size=300))
    path = save_safetensors(model, tmp_path / "m.safetensors", name=model.model_name,
                            overrides=model.checkpoint_overrides())
    loaded = zoo.create_model("pi-gpt2-tiny-sm-t-scfuffn", checkpoint_path=path)
    assert loaded.config == model.config and not loaded.training
    x = _tokens(T=32, V=300)
    with torch.no_grad():
        assert torch.equal(loaded(x), model.eval()(x))
    with pytest.raises(zoo.ZooError, match="context_length=32 but context_length=64 was requested"):
        zoo.create_model("pi-gpt2-tiny-sm-t-scfuffn", checkpoint_path=path, context_length=64)
    with pytest.raises(ValueError, match="Refusing to save a fused model"):
        save_safetensors(model.fold(), tmp_path / "f.safetensors", name=model.model_name)


def test_checkpoint_stores_the_whole_config_and_rebuilds_without_the_registry(tmp_path):
    """nanoGPT's model_args: the file alone describes the network (issue: self-describing checkpoints)."""
    import json

    from safetensors import safe_open
    from zoo.models.pi_transformer import PIGPT, PIConfig

    from zoo.core.checkpoint import save_safetensors

    model = _perturb(zoo.create_model("pi-gpt2-tiny-sm-r", ffn_layers=3, leaky_slope=0.2))
    path = save_safetensors(model, tmp_path / "m.safetensors")
    with safe_open(str(path), framework="pt") as fh:
        stored = json.loads(fh.metadata()["overrides"])
        state = {k: fh.get_tensor(k) for k in fh.keys()}
    # every PIConfig field is in the file, with the values this model was built with (spec §2 names)
    assert set(stored) == {f.name for f in dataclasses.fields(PIConfig)}
    assert stored["ffn_layers"] == 3 and stored["leaky_slope"] == 0.2 and stored["ffn_activation"] == "relu"
    rebuilt = PIGPT(PIConfig.from_dict(stored))  # no registry involved
    rebuilt.load_state_dict(state, strict=True)
    x = _tokens(T=16, V=256)
    with torch.no_grad():
        assert torch.equal(rebuilt.eval()(x), model.eval()(x))
