"""The trained module of a distillation run: the student's LM objective plus the teacher's soft targets.

The teacher is not part of this module (it is neither optimised, DDP-synchronised nor checkpointed):
the task runs it in eval mode under ``no_grad`` and passes its logits, and its per-head attention
entropies when they are matched, into ``forward``. Subclassing ``LMObjective`` keeps ``.model`` (the
student PIGPT that is saved and exported) and ``.regularizer`` (EReg thresholds) where the LM task looks.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from zoo.models.pi_transformer.entropy import position_entropy
from zoo.models.pi_transformer.model import next_token_loss
from zoo.tasks.language.objective import LMObjective


class DistillStepOutput(NamedTuple):
    """One training forward: the total and each term (``kd`` before alpha * tau^2, ``attn`` before its weight)."""

    loss: Tensor
    ce: Tensor
    kd: Tensor
    attn_match: Tensor
    ereg: Tensor
    attn: list[Tensor] | None


def head_entropies(attn: list[Tensor]) -> Tensor:
    """(L, H) head entropies E(l, h) of spec §6.1: mean over batch and all query positions, in nats."""
    return torch.stack([position_entropy(a).mean(dim=(0, 2)) for a in attn])  # each (B, H, T) -> (H,)


def soft_target_kl(student_logits: Tensor, teacher_logits: Tensor, tau: float) -> Tensor:
    """KL(teacher || student) of the tau-softened next-token distributions, mean over the B*(T-1) predictions.

    Args:
        student_logits, teacher_logits: (B, T, V); the last position predicts nothing and is dropped, as in CE.
    """
    V = student_logits.shape[-1]
    s = F.log_softmax(student_logits[:, :-1].reshape(-1, V).float() / tau, dim=-1)
    t = F.log_softmax(teacher_logits[:, :-1].reshape(-1, V).float() / tau, dim=-1)
    return F.kl_div(s, t, log_target=True, reduction="batchmean")  # sum over V, mean over predictions


class DistillObjective(LMObjective):
    """Student PIGPT (+ EReg regularizer) trained on (1-alpha) CE + alpha tau^2 KL (+ entropy matching)."""

    def __init__(self, objective: LMObjective, *, alpha: float, tau: float, attn_entropy_weight: float) -> None:
        super().__init__(objective.model, objective.regularizer, scale_lambda=objective.scale_lambda)
        self.alpha, self.tau, self.attn_entropy_weight = alpha, tau, attn_entropy_weight

    def forward(self, tokens: Tensor, with_metrics: bool = False, teacher_logits: Tensor | None = None,
                teacher_entropy: Tensor | None = None) -> DistillStepOutput:
        """Args: tokens (B, T); teacher_logits (B, T, V); teacher_entropy (L, H) when entropy matching is on."""
        if teacher_logits is None:
            raise ValueError("DistillObjective needs the teacher's logits for these tokens.")
        match = self.attn_entropy_weight > 0
        need_attn = with_metrics or match or self.regularizer is not None
        out = self.model(tokens, return_attn=need_attn)
        logits = out.logits if need_attn else out  # (B, T, V)
        ce = next_token_loss(logits, tokens)
        kd = soft_target_kl(logits, teacher_logits, self.tau)
        zero = torch.zeros((), device=ce.device, dtype=ce.dtype)
        attn_match = ((head_entropies(out.attn) - teacher_entropy) ** 2).mean() if match else zero
        ereg = self.lambda_for(*tokens.shape) * self.regularizer(out.attn) if self.regularizer is not None else zero
        loss = (1 - self.alpha) * ce + self.alpha * self.tau ** 2 * kd + self.attn_entropy_weight * attn_match + ereg
        attn = [a.detach() for a in out.attn] if with_metrics else None
        return DistillStepOutput(loss=loss, ce=ce, kd=kd, attn_match=attn_match, ereg=ereg, attn=attn)
