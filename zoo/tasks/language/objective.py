"""The trained module of the LM task: a PI-GPT plus its entropy regularizer, computing the whole loss.

The regularizer's thresholds theta are training-only state (spec §6.2), but they must be optimised,
synchronised across DDP ranks, clipped and checkpointed exactly like the model's weights. Wrapping both
in one ``nn.Module`` whose forward returns the loss gives all of that from the engine for free (DDP
all-reduces theta's gradient because it is a parameter of the wrapped module), while
``LMObjective.model`` stays the plain PIGPT that is saved, evaluated and exported.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor, nn

from zoo.models.pi_transformer.entropy import EntropyRegularizer, position_entropy
from zoo.models.pi_transformer.model import next_token_loss


class LMStepOutput(NamedTuple):
    """What one training forward returns.

    Attributes:
        loss: ce + ereg, the per-micro-batch objective (the task divides by the accumulation).
        ce: mean next-token cross-entropy (nats) over the B*(T-1) predictions of this process's batch.
        ereg: lambda_eff * L_ent (a zero tensor without regularization).
        attn: detached per-block attention probabilities (B, H, T, T) when metrics were requested.
    """

    loss: Tensor
    ce: Tensor
    ereg: Tensor
    attn: list[Tensor] | None


class LMObjective(nn.Module):
    """``model`` (a PIGPT) and, for EReg variants, its ``EntropyRegularizer``.

    Args:
        model: the language model; ``model(tokens, return_attn=True)`` must give ``.logits`` and ``.attn``.
        regularizer: thresholds and penalty of spec §6.2, or None for unregularized variants.
        scale_lambda: use lambda_eff = lambda * 128*128 / (B*T) with this micro-batch's B and T (§6.2) --
            with the per-process batch, which makes N DDP processes equal one process on the whole batch.
    """

    def __init__(self, model: nn.Module, regularizer: EntropyRegularizer | None = None, *,
                 scale_lambda: bool = True) -> None:
        super().__init__()
        self.model = model
        self.regularizer = regularizer
        self.scale_lambda = scale_lambda

    def lambda_for(self, batch_size: int, seq_len: int) -> float:
        """The loss weight of L_ent for a (batch_size, seq_len) micro-batch (0 without regularizer)."""
        if self.regularizer is None:
            return 0.0
        if self.scale_lambda:
            return self.regularizer.lambda_eff(batch_size, seq_len)
        return self.regularizer.lambda_

    def forward(self, tokens: Tensor, with_metrics: bool = False) -> LMStepOutput:
        """Args: tokens (B, T) int64. The explicit attention path runs only when it is needed (EReg, metrics)."""
        need_attn = with_metrics or self.regularizer is not None
        out = self.model(tokens, return_attn=need_attn)
        logits = out.logits if need_attn else out  # (B, T, V)
        ce = next_token_loss(logits, tokens)
        if self.regularizer is not None:
            B, T = tokens.shape
            ereg = self.lambda_for(B, T) * self.regularizer(out.attn)
        else:
            ereg = torch.zeros((), device=ce.device, dtype=ce.dtype)
        attn = [a.detach() for a in out.attn] if with_metrics else None
        return LMStepOutput(loss=ce + ereg, ce=ce, ereg=ereg, attn=attn)


@torch.no_grad()
def layer_metrics(objective: LMObjective, attn: list[Tensor]) -> dict[str, Tensor]:
    """Per-layer training metrics from one batch's attention (spec §6.1, §12).

    Returns float64 CPU tensors of length L: ``entropy`` (E(l): mean over batch, heads and all query
    positions, nats), ``nan`` (NaN entries of the layer's attention, averaged over heads), and when the
    model has them ``temperature`` (mean tau of the layer) and ``threshold`` (mean theta, fraction of ln T).
    """
    out = {
        "entropy": torch.stack([position_entropy(a).double().mean() for a in attn]).cpu(),
        "nan": torch.stack([torch.isnan(a).sum().double() / a.shape[1] for a in attn]).cpu(),
    }
    blocks = getattr(objective.model, "blocks", [])
    temps = [b.attn.temperature for b in blocks if getattr(b.attn, "temperature", None) is not None]
    if temps and len(temps) == len(attn):
        out["temperature"] = torch.stack([t.detach().double().mean() for t in temps]).cpu()
    if objective.regularizer is not None:
        out["threshold"] = objective.regularizer.theta.detach().double().mean(dim=1).cpu()
    return out


def ln_t(seq_len: int) -> float:
    """E_max = ln T, the entropy reference the metrics are reported against."""
    return math.log(seq_len)
