"""PI-GPT under 2PC (issue 19): the jax.numpy forward equals PyTorch in plaintext; SPU's logits stay close.

The MPC tests need the isolated environment ``.venv-mpc`` (``make mpc``) and skip with one line without it.
The reference is always the PyTorch model (the peer implementation), never the jax program under test.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import zoo
from zoo.cli import main
from zoo.mpc import env as mpc_env
from zoo.mpc.measure import pi_measure, run_worker, write_handover
from zoo.models.pi_transformer.variants import VARIANTS

TINY = [f"pi-gpt2-tiny-{v}" for v in VARIANTS]
# beyond the 12 presets: AERO pruning, per-head temperature (folded into W_Q), a learnable leaky slope
EXTRA = [("pi-gpt2-tiny-sm-scfuffn", dict(ffn_layers=2)), ("pi-gpt2-tiny-sm-t-scfuffn", dict(temperature_shape="head")),
         ("pi-gpt2-tiny-sm-r", dict(ffn_activation="learnable_leaky_relu", leaky_slope=0.1))]


def _mpc_python() -> Path:
    try:
        return mpc_env.find_mpc_python()
    except mpc_env.MpcEnvironmentError:
        pytest.skip(".venv-mpc not found: run `make mpc` to test the 2PC engine")


def _exit_code(argv: list[str]) -> int:
    """``zoo`` exit status, whether argparse exits (bad choice) or ``main`` returns (bad value)."""
    try:
        return main(argv)
    except SystemExit as exc:
        return int(exc.code)


def _perturbed(name: str, seed: int, **overrides) -> torch.nn.Module:
    """A tiny model whose gains, biases, scales and temperatures are far from their init values.

    At init alpha = beta = 1, LayerNorm = (1, 0) and every temperature is equal, so a swapped alpha/beta or a
    dropped LayerNorm bias would go unnoticed; random values make every weight matter.
    """
    torch.manual_seed(seed)
    net = zoo.create_model(name, context_length=16, **overrides)
    with torch.no_grad():
        for pname, p in net.named_parameters():
            if pname.endswith(("temperature", "alpha", "beta", "weight_g", "slope")):
                p.mul_(torch.empty_like(p).uniform_(0.5, 2.0))
            elif pname.endswith("bias") or ".ln" in pname or pname.startswith("ln_f"):
                p.add_(0.1 * torch.randn_like(p))
            else:
                p.mul_(3.0)  # std 0.06: sharper attention than at init
    return net.eval()


def test_jax_forward_equals_pytorch_in_plaintext_for_every_tiny_variant(tmp_path):
    python = _mpc_python()
    cases = [(name, {}) for name in TINY] + EXTRA
    dirs, refs = [], []
    rng = np.random.default_rng(0)
    for i, (name, overrides) in enumerate(cases):
        net = _perturbed(name, i, **overrides)
        tokens = rng.integers(0, net.config.vocab_size, size=16)
        with torch.no_grad():
            refs.append(net(torch.as_tensor(tokens)[None])[0].numpy())  # (T, V), the unfolded PyTorch model
        d = tmp_path / f"case{i}"
        d.mkdir()
        write_handover(net, tokens, d, last_only=False)
        dirs.append(d)
    results = run_worker(dirs, mode="plaintext", mpc_python=python)
    for (name, overrides), ref, res in zip(cases, refs, results):
        assert res["logits"].shape == ref.shape, name
        diff = float(np.abs(res["logits"] - ref).max())
        assert diff <= 1e-5, f"{name} {overrides}: max |jax - torch| = {diff:.2e}"
        assert np.abs(ref).max() > 0.1, "logits too small for the check to mean anything"


def test_missing_mpc_environment_says_make_mpc(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv(mpc_env.ENV_VAR, raising=False)
    monkeypatch.setattr(mpc_env, "_REPO", tmp_path)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(mpc_env.MpcEnvironmentError, match="make mpc"):
        pi_measure("pi-gpt2-tiny-sm-ln-g", seq_len=8)
    assert main(["pi-measure", "pi-gpt2-tiny-sm-ln-g", "--seq-len", "8"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "make mpc" in err[0]


@pytest.mark.parametrize("argv, word", [
    (["--engine", "crypten"], "spu"), (["--protocol", "aby3"], "aby3"), (["--seq-len", "0"], "seq-len"),
    (["--weights", "missing.safetensors", "--seq-len", "8"], "missing.safetensors")])
def test_bad_pi_measure_input_is_one_line_exit_2(argv, word, capsys):
    _mpc_python()  # the size checks run after the environment is found
    assert _exit_code(["pi-measure", "pi-gpt2-tiny-sm-ln-g", *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and word in err[0], err


@pytest.mark.slow
def test_spu_cheetah_logits_match_plaintext_within_fixed_point_tolerance():
    """One tiny variant, T=8, Cheetah 2PC: every position's logits within SPU's fixed-point error.

    SPU (FM64, 18 fraction bits) approximates exp (Taylor), the reciprocal (Goldschmidt) and rsqrt; each is
    accurate to about 1e-3 relative on its own range, so logits of magnitude ~2 may differ by a few 1e-3 to
    1e-2 after 4 blocks; 0.05 is that budget with room.
    """
    _mpc_python()
    torch.manual_seed(0)
    net = zoo.create_model("pi-gpt2-tiny-sm-ln-g").eval()
    tokens = np.random.default_rng(0).integers(0, 256, size=8)
    m = pi_measure(net, tokens=tokens, protocol="cheetah", all_logits=True)
    assert m.seq_len == 8 and m.engine == "spu" and m.protocol == "cheetah"
    assert m.max_abs_logit_diff < 0.05
    assert m.bytes_sent == sum(m.bytes_per_party) > 0 and m.rounds > 0
    # each party sends: the 2PC protocol is interactive in both directions
    assert min(m.bytes_per_party) > 0
    # the operators SPU profiled account for every byte on the link
    assert sum(op["bytes"] for op in m.ops.values()) == m.bytes_sent


@pytest.fixture
def fake_measurements(monkeypatch):
    """Two measured rows (baseline and EReg at T=16) in place of the shipped table."""
    from zoo.models.pi_transformer import measured

    monkeypatch.setattr(measured, "MEASURED", {("pi-gpt2-tiny-sm-ln-g", 16): (400_000_000, 12_000),
                                               ("pi-gpt2-tiny-ereg-sm-t-scfuffn", 16): (100_000_000, 3_000)})
    measured._by_key.cache_clear()
    yield
    measured._by_key.cache_clear()


def test_pi_cost_reports_measured_rows_with_the_estimates_error(fake_measurements):
    from zoo.models.pi_transformer.cost import estimate_cost

    # SM(t)+ScFuFFN runs the same inference graph as its EReg-trained twin: the measurement applies
    cost = zoo.pi_cost("pi-gpt2-tiny-sm-t-scfuffn", seq_len=16)
    assert cost.provenance.startswith("measured: SPU")
    assert cost.comm_gb == pytest.approx(0.1) and cost.rounds == 3_000
    assert cost.savings.comm == pytest.approx(4.0)
    est, base_est = (estimate_cost(zoo.create_model(f"pi-gpt2-tiny-{v}"), 16)[0] for v in ("sm-t-scfuffn", "sm-ln-g"))
    assert cost.estimated_comm_gb == pytest.approx(est)
    assert cost.estimate_error["comm"] == pytest.approx(est / 0.1 - 1)
    assert cost.estimate_error["savings_comm"] == pytest.approx((base_est / est) / 4.0 - 1)
    assert cost.to_dict()["estimate_error"] == cost.estimate_error
    # no temperature = another graph, and another T: neither was measured
    assert zoo.pi_cost("pi-gpt2-tiny-sm-scfuffn", seq_len=16).provenance == "estimated"
    assert zoo.pi_cost("pi-gpt2-tiny-ereg-sm-t-scfuffn", seq_len=32).provenance == "estimated"
    # the papers' rows still win where they exist
    assert zoo.pi_cost("pi-gpt2-small-sm-ln-g", seq_len=128).provenance.startswith("published")


def test_every_shipped_measurement_has_its_baseline_and_a_registered_model():
    from zoo.models.pi_transformer.measured import MEASURED

    for name, T in MEASURED:
        assert name in zoo.list_models("pi-gpt2-tiny-*")
        assert ("pi-gpt2-tiny-sm-ln-g", T) in MEASURED, f"{name} T={T} has no baseline row"
        assert zoo.pi_cost(name, seq_len=T).provenance.startswith("measured")
