"""Entropy metrics (spec §6.1) and the entropy regularizer (§6.2), against the spec's numbers."""
from __future__ import annotations

import json
import math

import pytest
import torch
from zoo.models.pi_transformer.config import EntropyRegConfig
from zoo.models.pi_transformer.entropy import (
    EntropyRegularizer,
    EntropyReport,
    causal_uniform_ceiling,
    entropy_from_attention,
    headwise_distribution,
    position_entropy,
)
from zoo.models.pi_transformer.model import next_token_loss

import zoo

# 2501.03489 Figure 3a: head entropies (nats) of a trained SM+LN+G model at T = 128 (spec §10).
REFERENCE_SM_LN_G = """
2.16 2.91 3.83 3.33 3.55 3.12 3.00 3.20 2.68 2.87 3.04 3.04
3.46 0.77 0.73 1.00 0.93 1.13 0.95 1.48 1.38 1.56 1.10 0.61
1.64 1.92 1.71 1.01 1.57 1.06 2.11 1.43 1.70 1.83 1.35 2.40
3.18 2.33 2.04 2.31 2.45 2.32 2.20 1.94 2.44 2.40 2.84 2.17
2.58 2.52 2.27 1.88 2.24 2.61 2.63 2.14 2.50 3.07 2.41 2.76
2.09 0.64 2.71 1.39 2.17 2.30 2.77 1.64 2.46 2.43 2.77 1.78
2.38 2.72 2.50 2.27 2.55 2.37 2.34 2.79 2.57 2.35 2.78 2.37
2.56 2.79 2.31 2.60 2.51 2.51 2.58 2.49 2.33 2.60 2.57 1.98
2.72 2.43 2.30 2.61 2.26 2.36 2.65 2.72 2.70 2.62 2.84 2.65
2.78 2.73 2.66 2.68 2.67 2.55 2.70 2.66 2.62 2.51 2.71 2.81
2.69 2.72 2.90 2.71 2.70 2.60 2.83 2.71 2.57 2.48 2.57 2.71
2.75 2.75 2.69 2.88 2.70 2.66 2.73 2.60 2.70 2.68 2.62 2.62
"""


def _uniform_causal(T: int) -> torch.Tensor:
    """(1, 1, T, T): row i spreads 1/(i+1) over keys 0..i, exact zeros above the diagonal."""
    mask = torch.ones(T, T).tril()
    return (mask / mask.sum(-1, keepdim=True)).view(1, 1, T, T)


@pytest.mark.parametrize("T, expected", [(64, 3.2058), (128, 3.8782), (256, 4.5596), (512, 5.2462)])
def test_uniform_causal_attention_reaches_the_causal_ceiling(T, expected):
    # spec §11.1: mean over all query positions, including the first (entropy 0)
    report = entropy_from_attention([_uniform_causal(T)])
    assert report.head.item() == pytest.approx(expected, abs=1e-4)
    assert report.causal_ceiling == pytest.approx(expected, abs=1e-4)
    assert report.ln_t == pytest.approx(math.log(T))


@pytest.mark.parametrize("T", [64, 128])
def test_full_uniform_attention_has_entropy_ln_t(T):
    report = entropy_from_attention([torch.full((2, 3, T, T), 1.0 / T)])
    torch.testing.assert_close(report.head, torch.full((1, 3), math.log(T), dtype=torch.float64), atol=1e-5, rtol=0)


def test_zero_probabilities_contribute_zero_not_nan():
    a = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    e = position_entropy(a)
    assert torch.isfinite(e).all() and e.abs().max() < 1e-7


def _worked_example() -> torch.Tensor:
    return torch.tensor([[1.0, 0.0], [0.5, 0.5]]).view(1, 1, 2, 2)  # one block, one head, B = 1, T = 2


def test_regularizer_worked_example_sum_and_mean():
    # spec §6.2: theta = 0.5, gamma = 0.2 -> sum 0.240227, mean 0
    for reduction, expected in (("sum", 0.240227), ("mean", 0.0)):
        reg = EntropyRegularizer(1, 1, EntropyRegConfig(enabled=True, gamma=0.2, threshold_init=0.5,
                                                        reduction=reduction))
        assert reg([_worked_example()]).item() == pytest.approx(expected, abs=1e-6)


def test_penalty_is_zero_when_every_deviation_is_within_the_tolerance():
    # e = (0, ln 2); E_max = ln 2; with theta*E_max within gamma*E_max of both entropies nothing is penalised
    reg = EntropyRegularizer(1, 1, EntropyRegConfig(enabled=True, gamma=0.6, threshold_init=0.5))
    assert reg([_worked_example()]).item() == 0.0
    A = torch.full((2, 4, 16, 16), 1 / 16)  # every entropy = ln 16 = E_max; theta = 0.9, margin 0.2 E_max
    reg = EntropyRegularizer(1, 4, EntropyRegConfig(enabled=True, threshold_init=0.9))
    assert reg([A]).item() == 0.0


def test_threshold_gradient_moves_theta_times_emax_toward_the_entropies():
    A = torch.full((1, 2, 8, 8), 1 / 8)  # e = ln 8 = E_max at every position
    for theta0, sign in ((0.2, -1.0), (1.0, None)):
        reg = EntropyRegularizer(1, 2, EntropyRegConfig(enabled=True, threshold_init=theta0, gamma=0.1))
        reg([A]).backward()
        if sign is None:  # at e == theta*E_max the penalty is inactive: no gradient
            assert torch.equal(reg.theta.grad, torch.zeros_like(reg.theta))
        else:  # e above theta*E_max: gradient descent must raise theta
            assert (reg.theta.grad < 0).all()
    A = _uniform_causal(8).repeat(1, 2, 1, 1)  # mean entropy below E_max; theta = 1 is too high
    reg = EntropyRegularizer(1, 2, EntropyRegConfig(enabled=True, threshold_init=1.0, reduction="mean"))
    reg([A]).backward()
    assert (reg.theta.grad > 0).all()


def test_regularizer_gradient_reaches_the_model_through_the_attention():
    model = zoo.create_model("pi-gpt2-tiny-ereg-sm-t-scfuffn")
    reg = EntropyRegularizer.for_model(model)
    assert reg.theta.shape == (4, 4) and reg.config.enabled and reg.theta.detach().eq(0.5).all()
    x = torch.randint(0, 256, (2, 64))
    out = model(x, return_attn=True)
    loss_ent = reg(out.attn)
    assert loss_ent.item() > 0
    (reg.lambda_eff(2, 64) * loss_ent).backward()
    assert model.blocks[0].attn.temperature.grad.abs().sum() > 0 and model.blocks[0].attn.q.weight.grad is not None
    assert reg.theta.grad.abs().sum() > 0
    assert model.wte.weight.grad is not None and next_token_loss(out.logits, x).item() > 0
    assert reg.lambda_eff(128, 128) == pytest.approx(1e-5) and reg.lambda_eff(32, 64) == pytest.approx(8e-5)


def test_regularizer_refuses_attention_for_the_wrong_number_of_blocks():
    with pytest.raises(ValueError, match="attention for 1 blocks but the regularizer has thresholds for 4"):
        EntropyRegularizer(4, 1)([_worked_example()])


def test_headwise_bins_of_the_published_matrix_are_4_2_13_2_72_9_9_7():
    # spec §11.7
    head = torch.tensor([[float(v) for v in row.split()] for row in REFERENCE_SM_LN_G.strip().splitlines()])
    bins = headwise_distribution(head)
    assert [round(100 * b, 1) for b in bins] == [4.2, 13.2, 72.9, 9.7]
    report = EntropyReport.from_head_matrix(head, seq_len=128)
    assert report.overload == bins[3] and report.collapse == bins[0]
    assert report.causal_ceiling == pytest.approx(3.8782, abs=1e-4)
    assert report.layer[1].item() == pytest.approx(sum([3.46, 0.77, 0.73, 1.00, 0.93, 1.13, 0.95, 1.48, 1.38, 1.56,
                                                        1.10, 0.61]) / 12)


def test_softmax_only_layer_profile_shows_overload_and_collapse():
    # spec §10, Figure 3f: layer means of the SM model, used as a 12 x 1 matrix
    means = torch.tensor([3.59, 3.85, 3.82, 3.79, 3.74, 2.60, 2.13, 1.97, 0.52, 0.18, 0.06, 0.05]).view(12, 1)
    report = EntropyReport.from_head_matrix(means, seq_len=128)
    assert report.bins == pytest.approx((4 / 12, 0.0, 3 / 12, 5 / 12))
    assert report.deep_collapse == pytest.approx(4 / 6)


def test_attention_entropy_on_a_model_counts_nans_and_serialises(tmp_path):
    model = zoo.create_model("pi-gpt2-tiny-sm-ln-g")
    model.train()
    tokens = torch.randint(0, 256, (5, 64))
    report = zoo.attention_entropy(model, tokens, batch_size=2)
    assert model.training  # mode restored
    assert report.head.shape == (4, 4) and report.layer.shape == (4,) and report.n_sequences == 5
    assert torch.isfinite(report.head).all() and report.nan_counts.tolist() == [0.0] * 4
    assert sum(report.bins) == pytest.approx(1.0)
    assert (report.head <= causal_uniform_ceiling(64) + 1e-6).all()
    # averaging over batches equals one big batch
    again = zoo.attention_entropy(model, tokens, batch_size=5)
    torch.testing.assert_close(report.head, again.head)
    with torch.no_grad():  # a NaN weight shows up in the NaN counts of every layer from there on
        model.blocks[2].attn.q.weight[0, 0] = float("nan")
    broken = zoo.attention_entropy(model, tokens[:1])
    assert broken.nan_counts[:2].tolist() == [0.0, 0.0] and broken.nan_counts[2] > 0
    data = json.loads(json.dumps(broken.to_dict(), allow_nan=False))
    assert data["head"][2][0] is None and data["units"] == "nats"
