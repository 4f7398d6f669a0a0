"""Nonlinearity census and FLOPs (spec §7), measured census via zoo.count_nonlinear, PI cost (§8)."""
from __future__ import annotations

import pytest
import torch
from zoo.models.pi_transformer.census import nonlinearity_census, paper_billions
from zoo.models.pi_transformer.config import PIConfig
from zoo.models.pi_transformer.cost import estimate_cost, pi_cost
from zoo.models.pi_transformer.variants import variant_switches

import zoo

UNFUSED = variant_switches("sm-ln-g")
FUSED = variant_switches("sm-scfuffn")


# spec §7 "Values that must come out exactly": (L, T, switches, ffn_layers, SM, LN, act, FFN, attn, printed)
CENSUS_TABLE = [
    (12, 128, UNFUSED, None, 2_359_296, 2_359_296, 4_718_592, 14_495_514_624, 7_700_742_144, "14.5B / 7.7B"),
    (12, 128, FUSED, None, 2_359_296, 0, 0, 1_811_939_328, 7_700_742_144, "1.8B / 7.7B"),
    (12, 256, UNFUSED, None, 9_437_184, 4_718_592, 9_437_184, 28_991_029_248, 16_307_453_952, "29.0B / 16.3B"),
    (12, 256, FUSED, None, 9_437_184, 0, 0, 3_623_878_656, 16_307_453_952, "3.6B / 16.3B"),
    (12, 512, UNFUSED, None, 37_748_736, 9_437_184, 18_874_368, 57_982_058_496, 36_238_786_560, "58.0B / 36.2B"),
    (12, 512, FUSED, None, 37_748_736, 0, 0, 7_247_757_312, 36_238_786_560, "7.3B / 36.2B"),
    (18, 128, UNFUSED, None, 3_538_944, 3_538_944, 7_077_888, 21_743_271_936, 11_551_113_216, "21.7B / 11.6B"),
    (18, 128, FUSED, None, 3_538_944, 0, 0, 2_717_908_992, 11_551_113_216, "2.7B / 11.6B"),
    (12, 128, FUSED, 6, 2_359_296, 0, 0, 905_969_664, 7_700_742_144, "0.9B / 7.7B"),
]


@pytest.mark.parametrize("L, T, switches, ffn_layers, sm, ln, act, ffn, attn, printed", CENSUS_TABLE)
def test_census_and_flops_match_the_spec_table_exactly(L, T, switches, ffn_layers, sm, ln, act, ffn, attn, printed):
    cfg = PIConfig.small(n_layer=L, context_length=T, ffn_layers=ffn_layers, **switches)
    c = nonlinearity_census(cfg, T)
    assert (c.softmax_elements, c.layernorm_elements, c.activation_elements) == (sm, ln, act)
    assert (c.ffn_flops, c.attn_flops) == (ffn, attn)
    assert c.flops_string == printed
    assert c.softmax_causal_elements == L * 12 * T * (T + 1) // 2
    assert c.attn_flops_strict == L * (8 * T * 768**2 + 4 * T * T * 768)
    assert c.final_layernorm_elements == T * 768  # listed apart, not in the paper totals
    assert c.nonlinear_elements == sm + ln + act


def test_paper_format_census_strings():
    base = nonlinearity_census(PIConfig.small(**UNFUSED), 128)
    assert base.paper_string == "SM: 144 × R^{128×128}; LN: 24 × R^{128×768}; G: 12 × R^{128×3072}"
    relu = nonlinearity_census(PIConfig.small(**variant_switches("sm-ln-r")), 128)
    assert relu.paper_string == "SM: 144 × R^{128×128}; LN: 24 × R^{128×768}; R: 12 × R^{128×3072}"
    assert nonlinearity_census(PIConfig.small(**FUSED), 128).paper_string == "SM: 144 × R^{128×128}"
    assert nonlinearity_census(PIConfig.small(**variant_switches("sm-g")), 256).paper_string == \
        "SM: 144 × R^{256×256}; G: 12 × R^{256×3072}"


def test_paper_billions_rounds_like_the_published_tables():
    assert [paper_billions(x) for x in (7_247_757_312, 11_551_113_216, 905_969_664, 57_982_058_496)] == \
        ["7.3B", "11.6B", "0.9B", "58.0B"]


def _measured_matches_analytic(model, T: int) -> None:
    measured = zoo.count_nonlinear(model, torch.zeros(1, T, dtype=torch.long))
    c = nonlinearity_census(model.config, T)
    kinds = dict(measured.by_kind)
    assert kinds.pop("softmax") == c.softmax_elements
    assert measured.rows["softmax"] == c.softmax_rows
    assert measured.softmax_valid == c.softmax_causal_elements
    assert kinds.pop("layer_norm", 0) == c.layernorm_elements + c.final_layernorm_elements
    assert measured.rows.get("layer_norm", 0) == c.layernorm_rows + (T if c.final_layernorm_elements else 0)
    assert measured.count("layer_norm", "ln_f") == c.final_layernorm_elements
    act_kind = {"gelu": "gelu", "gelu_tanh": "gelu", "relu": "relu", "leaky_relu": "relu", "learnable_leaky_relu": "relu"}
    measured_act = kinds.pop(act_kind[c.activation], 0) if c.activation else 0
    assert measured_act == c.activation_elements
    assert kinds == {}, f"unexpected nonlinearities {kinds}"


@pytest.mark.parametrize("name", zoo.list_models("pi-gpt2-tiny-*"))
def test_measured_census_equals_the_analytic_one_for_every_tiny_variant(name):
    _measured_matches_analytic(zoo.create_model(name), 64)


@pytest.mark.parametrize("extra", [dict(ffn_activation="leaky_relu", norm="none"),
                                   dict(ffn_activation="learnable_leaky_relu", norm="layernorm", ffn_layers=3),
                                   dict(FUSED, ffn_layers=1, final_norm="none")])
def test_measured_census_equals_the_analytic_one_for_leaky_and_pruned_configs(extra):
    from zoo.models.pi_transformer.model import PIGPT

    _measured_matches_analytic(PIGPT(PIConfig.tiny(**extra)), 32)


@pytest.mark.parametrize("name", ["pi-gpt2-small-sm-ln-g"])  # every variant: the tiny tests; every size: slow
def test_measured_census_equals_the_analytic_one_for_large_presets(name):
    # a short T and a small vocabulary keep this fast; the census scales analytically in T
    _measured_matches_analytic(zoo.create_model(name, vocab_size=64, context_length=16), 16)


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in zoo.list_models("pi-gpt2-*") if "-tiny-" not in n])
def test_measured_census_equals_the_analytic_one_for_every_large_preset(name):
    _measured_matches_analytic(zoo.create_model(name, vocab_size=64), 128)


# spec §8.2, typed in from the spec: (L, T, dataset, variant switches, ffn_layers, comm, latency, table)
PUBLISHED = [
    (12, 128, "codeparrot", "sm-ln-g", None, 25.32, 8.21, "2501.03489 Table 3"),
    (12, 128, "codeparrot", "sm-ln-r", None, 9.44, 6.06, "2501.03489 Table 3"),
    (12, 128, "codeparrot", "sm-scffn", None, 6.95, 5.68, "AERO Table 4"),
    (12, 128, "codeparrot", "sm-scfuffn", None, 6.43, 4.76, "2501.03489 Table 3"),
    (12, 128, "codeparrot", "ereg-sm-t-scfuffn", None, 6.43, 4.76, "2501.03489 Table 3"),
    (12, 128, "codeparrot", "sm-scfuffn", 6, 6.29, 4.23, "AERO Table 4"),
    (12, 256, "codeparrot", "sm-ln-g", None, 58.51, 16.57, "Table 7"),
    (12, 256, "codeparrot", "sm-ln-r", None, 26.73, 12.59, "Table 7"),
    (12, 256, "codeparrot", "sm-scffn", None, 21.77, 11.91, "AERO Table 5"),
    (12, 256, "codeparrot", "sm-scfuffn", None, 20.72, 10.45, "Table 7"),
    (12, 256, "codeparrot", "sm-scfuffn", 6, 20.59, 10.32, "Table 7"),
    (18, 128, "codeparrot", "sm-ln-g", None, 37.17, 10.77, "Table 8"),
    (18, 128, "codeparrot", "sm-ln-r", None, 13.34, 8.04, "Table 8"),
    (18, 128, "codeparrot", "sm-scffn", None, 9.62, 7.23, "AERO"),
    (18, 128, "codeparrot", "sm-scfuffn", None, 8.83, 6.07, "Table 8"),
    (18, 128, "codeparrot", "sm-scfuffn", 14, 8.79, 5.85, "Table 8"),
    (12, 512, "languini", "sm-ln-g", None, 145.24, 30.74, "Table 4"),
    (12, 512, "languini", "sm-ln-r", None, 81.71, 23.54, "Table 4"),
    (12, 512, "languini", "sm-scffn", None, 71.76, 21.51, "AERO Table 7"),
    (12, 512, "languini", "sm-scfuffn", None, 69.68, 19.44, "Table 4"),
    (12, 512, "languini", "sm-scfuffn", 11, 69.64, 19.11, "Table 4"),
]


def _config(L: int, T: int, dataset: str, variant: str, ffn_layers: int | None) -> PIConfig:
    vocab = 16_384 if dataset == "languini" else 50_000
    return PIConfig.small(n_layer=L, context_length=T, vocab_size=vocab, ffn_layers=ffn_layers,
                          **variant_switches(variant))


@pytest.mark.parametrize("L, T, dataset, variant, ffn_layers, comm, lat, table", PUBLISHED)
def test_published_rows_are_returned_exactly_with_their_source(L, T, dataset, variant, ffn_layers, comm, lat, table):
    cost = pi_cost(_config(L, T, dataset, variant, ffn_layers), seq_len=T, dataset=dataset)
    assert (cost.comm_gb, cost.latency_min) == (comm, lat)
    assert cost.provenance.startswith("published: ") and table in cost.provenance


@pytest.mark.parametrize("L, T, dataset, variant, ffn_layers, comm, lat, table",
                         [row for row in PUBLISHED if row[3] != "ereg-sm-t-scfuffn"])
def test_estimator_is_within_1pct_comm_and_10pct_latency_of_every_published_row(L, T, dataset, variant, ffn_layers,
                                                                               comm, lat, table):
    est_comm, est_lat = estimate_cost(_config(L, T, dataset, variant, ffn_layers), T, dataset)
    assert abs(est_comm / comm - 1) < 0.01
    assert abs(est_lat / lat - 1) < 0.10


def test_ereg_savings_at_l12_t128_are_3_94x_comm_and_1_72x_latency():
    cost = zoo.pi_cost(zoo.create_model("pi-gpt2-tiny-ereg-sm-t-scfuffn").config.replace(
        n_layer=12, n_head=12, d_model=768, d_ff=None, context_length=128, vocab_size=50_000))
    assert cost.provenance == "published: 2501.03489 Table 3"
    assert (round(cost.savings.comm, 2), round(cost.savings.latency, 2)) == (3.94, 1.72)
    assert (cost.baseline_comm_gb, cost.baseline_latency_min) == (25.32, 8.21)
    assert any("measured wall time" in c for c in cost.caveats)


@pytest.mark.parametrize("variant, comm", [("sm-ln", 7.77), ("sm-g", 24.48), ("sm-r", 8.60), ("sm", 6.94)])
def test_unmeasured_variants_are_estimated_like_the_spec_examples(variant, comm):
    cost = pi_cost(f"pi-gpt2-small-{variant}")  # a registry name works too
    assert cost.provenance == "estimated" and round(cost.comm_gb, 2) == comm
    assert any("least-squares fit" in c for c in cost.caveats)
    assert any("c_LN + 2 c_R" in c for c in cost.caveats)
    assert not any("d_model=768, n_head=12" in c for c in cost.caveats)  # the fit's own width
    assert cost.savings.comm == pytest.approx(cost.baseline_comm_gb / cost.comm_gb)


def test_estimates_for_other_widths_say_the_fit_assumes_width_independence():
    cost = pi_cost(zoo.create_model("pi-gpt2-tiny-sm-r"), seq_len=64)
    assert cost.provenance == "estimated"
    assert any("d_model=768, n_head=12" in c for c in cost.caveats)
    assert any("vocab_size=256" in c for c in cost.caveats)


def test_wn_sn_and_temperature_cost_nothing_extra():
    base = estimate_cost(PIConfig.small(**variant_switches("sm")))
    for variant in ("sm-wn-ffn", "sm-sn-ffn", "sm-scffn"):
        assert estimate_cost(PIConfig.small(**variant_switches(variant))) == pytest.approx(base)


def test_cost_rejects_bad_input_with_a_fix():
    with pytest.raises(ValueError, match="dataset='wikitext' is not calibrated; use one of codeparrot, languini"):
        pi_cost(PIConfig.small(), dataset="wikitext")
    with pytest.raises(ValueError, match="seq_len=256 exceeds the model's n_positions=128; build it with "
                                         "context_length=256"):
        pi_cost(PIConfig.small(), seq_len=256)
    with pytest.raises(ValueError, match="Expected a PIConfig or a PI-GPT model"):
        pi_cost(torch.nn.Linear(2, 2))
