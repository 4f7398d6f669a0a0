"""PIConfig validation (spec §2): every malformed config fails with a one-line message saying what to do."""
from __future__ import annotations

import pytest
from zoo.models.pi_transformer.config import EntropyRegConfig, PIConfig


@pytest.mark.parametrize("overrides, message", [
    (dict(n_head=12, d_model=200), r"n_head=12 does not divide d_model=200; choose an n_head that divides 200"),
    (dict(ffn_fused=True, ffn_activation="gelu"), r"ffn_fused=True needs ffn_activation='identity' \(got 'gelu'\)"),
    (dict(norm="layernorm", norm_targets=("ffn",)), r"norm_targets=\['ffn'\] is only used with norm='weightnorm'"),
    (dict(ffn_layers=5), r"ffn_layers=5 > n_layer=4; use at most 4"),
    (dict(attn_temperature="learnable", temperature_init=0.0), r"temperature_init=0.0 must be > 0"),
    (dict(temperature_init=-1.0), r"temperature_init=-1.0 must be > 0"),
    (dict(norm="batchnorm"), r"norm='batchnorm' is not one of 'layernorm', 'none', 'weightnorm', 'spectralnorm'"),
    (dict(norm="weightnorm", norm_targets=("ffn", "x")), r"must be a non-empty subset of"),
    (dict(ffn_activation="swish"), r"ffn_activation='swish' is not one of"),
    (dict(n_positions=32), r"n_positions=32 is smaller than context_length=64"),
    (dict(vocab_size=0), r"vocab_size=0 must be a positive integer"),
    (dict(ffn_scaling="learned"), r"ffn_scaling='learned' is not one of 'none', 'learnable', 'fixed'"),
    (dict(temperature_shape="position"), r"temperature_shape='position' is not one of"),
    (dict(ffn_scale_alpha_init=0.0), r"ffn_scale_alpha_init=0.0 must be a finite number > 0"),
    (dict(leaky_slope=-0.1), r"leaky_slope=-0.1 must be a finite number >= 0"),
    (dict(embd_dropout=1.0), r"embd_dropout=1.0 must be in \[0, 1\)"),
    (dict(entropy_reg=dict(reduction="median")), r"entropy_reg.reduction='median' is not one of 'sum', 'mean'"),
    (dict(entropy_reg=dict(gama=0.2)), r"Unknown entropy_reg field 'gama'. Did you mean 'gamma'"),
    (dict(qk_bias="yes"), r"qk_bias='yes' must be true or false"),
])
def test_malformed_config_raises_one_line_error_saying_what_to_do(overrides, message):
    with pytest.raises(ValueError, match=message) as info:
        PIConfig.tiny(**overrides)
    assert "\n" not in str(info.value)


def test_unknown_field_suggests_the_closest_one():
    with pytest.raises(ValueError, match=r"Unknown PIConfig field 'n_layers'. Did you mean 'n_layer'"):
        PIConfig.tiny(n_layers=3)


def test_presets_have_the_spec_sizes_and_derived_defaults():
    small, l18, tiny = PIConfig.small(), PIConfig.small_l18(), PIConfig.tiny()
    assert (small.n_layer, small.n_head, small.d_model, small.ffn_dim, small.context_length) == (12, 12, 768, 3072, 128)
    assert (l18.n_layer, l18.n_head, l18.d_model) == (18, 12, 768)
    assert (tiny.n_layer, tiny.n_head, tiny.d_model, tiny.ffn_dim, tiny.context_length, tiny.vocab_size) == \
        (4, 4, 128, 512, 64, 256)
    assert small.n_pos == 128 and small.n_ffn_layers == 12 and small.targets == frozenset()
    assert PIConfig.tiny(norm="weightnorm").targets == frozenset({"ffn"})  # the paper's best target
    # derived defaults follow a replaced context length instead of going stale
    assert small.replace(context_length=256).n_pos == 256


def test_config_round_trips_through_a_json_dict():
    cfg = PIConfig.tiny(norm="spectralnorm", norm_targets=["q", "ffn"], ffn_activation="identity",
                        entropy_reg=dict(enabled=True, gamma=0.1), ffn_layers=2)
    again = PIConfig.from_dict(cfg.to_dict())
    assert again == cfg
    assert again.norm_targets == ("q", "ffn") and again.entropy_reg == EntropyRegConfig(enabled=True, gamma=0.1)
