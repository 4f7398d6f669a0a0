"""Attention-entropy metrics (spec §6.1) and the entropy regularization loss (§6.2).

The metrics read the attention probabilities exactly as the forward uses them (after temperature and
causal mask), which ``PIGPT(tokens, return_attn=True)`` returns. All entropies are in nats. Masked
entries are exact zeros and contribute 0 (the eps inside the log keeps 0 * log 0 finite).
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from zoo.models.pi_transformer.config import EntropyRegConfig

EPS = 1e-9  # spec §6.1: e = -sum a * ln(a + eps)


def position_entropy(attn: Tensor, eps: float = EPS) -> Tensor:
    """Entropy of each attention row.

    Args:
        attn: (..., T_q, T_k) row-stochastic probabilities, masked entries exactly 0.
    Returns:
        (..., T_q) entropies in nats, computed in float32 (float64 stays float64).
    """
    a = attn if attn.dtype in (torch.float32, torch.float64) else attn.float()
    return -(a * torch.log(a + eps)).sum(dim=-1)


def causal_uniform_ceiling(T: int) -> float:
    """(1/T) * sum_{i=1..T} ln i = ln(T!) / T: the largest head entropy possible under a causal mask."""
    return math.lgamma(T + 1) / T


def headwise_distribution(head: Tensor) -> tuple[float, float, float, float]:
    """Fractions of heads in [0, M/4), [M/4, M/2), [M/2, 3M/4), [3M/4, M], M = max head entropy (Fig. 2a).

    Args:
        head: (L, H) head entropies; non-finite entries (NaN runs) are left out of the count.
    """
    e = head.double().flatten()
    e = e[torch.isfinite(e)]
    if e.numel() == 0:
        return (float("nan"),) * 4  # type: ignore[return-value]
    m = e.max()
    if m <= 0:  # every head fully collapsed: all in the bottom bin
        return (1.0, 0.0, 0.0, 0.0)
    idx = (e >= m / 4).long() + (e >= m / 2).long() + (e >= 3 * m / 4).long()  # the top bin is closed at M
    counts = torch.bincount(idx, minlength=4).double() / e.numel()
    return tuple(float(c) for c in counts)  # type: ignore[return-value]


@dataclass(frozen=True)
class EntropyReport:
    """Entropy analysis of one model on one token set (spec §6.1).

    Attributes:
        head: (L, H) head entropy E(l, h): mean over sequences and all query positions (Eq. 7), nats.
        layer: (L,) layer mean entropy E(l) = mean over heads.
        bins: fractions of heads in [0, M/4), [M/4, M/2), [M/2, 3M/4), [3M/4, M], M = max of ``head``.
        overload: entropic overload = the top-bin fraction (baselines 3-8 %, LN-free GELU 58 %).
        collapse: entropy collapse = the bottom-bin fraction (Softmax-only 33 %).
        deep_collapse: bottom-bin fraction among the heads of the deeper half of the layers, the paper's
            "heads near 0 in deep layers" (our summary number; the paper shows it as a heatmap).
        nan_counts: (L,) NaN entries of each layer's attention matrices summed over the analysed
            sequences and averaged over heads (the reference's instability signal).
        seq_len: T (key length of the attention matrices).
        ln_t: ln T, the paper's E_max.
        causal_ceiling: (1/T) sum ln i, the largest head entropy under a causal mask.
        n_sequences: number of sequences averaged.
    """

    head: Tensor
    layer: Tensor
    bins: tuple[float, float, float, float]
    overload: float
    collapse: float
    deep_collapse: float
    nan_counts: Tensor
    seq_len: int
    ln_t: float
    causal_ceiling: float
    n_sequences: int

    @classmethod
    def from_head_matrix(cls, head: Tensor, *, seq_len: int, nan_counts: Tensor | None = None,
                         n_sequences: int = 0) -> EntropyReport:
        """Derive every summary from an (L, H) head-entropy matrix (e.g. a published one)."""
        head = head.detach().double().cpu()
        bins = headwise_distribution(head)
        L = head.shape[0]
        deep = head[L // 2:]
        finite = head[torch.isfinite(head)]
        m = float(finite.max()) if finite.numel() else float("nan")
        deep_f = deep[torch.isfinite(deep)]
        deep_collapse = float((deep_f < m / 4).double().mean()) if deep_f.numel() and m > 0 else float("nan")
        return cls(head=head, layer=head.mean(dim=1), bins=bins, overload=bins[3], collapse=bins[0],
                   deep_collapse=deep_collapse,
                   nan_counts=torch.zeros(L, dtype=torch.float64) if nan_counts is None else nan_counts.double(),
                   seq_len=seq_len, ln_t=math.log(seq_len), causal_ceiling=causal_uniform_ceiling(seq_len),
                   n_sequences=n_sequences)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly view (NaN entries become None)."""
        def clean(values: Iterable[float]) -> list[float | None]:
            return [None if not math.isfinite(v) else round(float(v), 6) for v in values]

        return {
            "units": "nats",
            "seq_len": self.seq_len, "n_sequences": self.n_sequences,
            "ceilings": {"ln_T": self.ln_t, "causal_uniform": self.causal_ceiling},
            "head": [clean(row) for row in self.head.tolist()],
            "layer": clean(self.layer.tolist()),
            "bins": {"edges": ["[0,M/4)", "[M/4,M/2)", "[M/2,3M/4)", "[3M/4,M]"], "fractions": clean(self.bins)},
            "overload": self.overload, "collapse": self.collapse, "deep_collapse": self.deep_collapse,
            "nan_counts": clean(self.nan_counts.tolist()),
        }


class _Accumulator:
    """Sums of per-(layer, head) entropies and NaN counts over batches of attention matrices."""

    def __init__(self) -> None:
        self.sum: Tensor | None = None
        self.nan: Tensor | None = None
        self.rows = 0
        self.seqs = 0
        self.T = 0

    def add(self, attn: Sequence[Tensor]) -> None:
        ent = torch.stack([position_entropy(a.detach()).double().sum(dim=(0, 2)) for a in attn])  # (L, H)
        nan = torch.stack([torch.isnan(a.detach()).sum().double() / a.shape[1] for a in attn])  # (L,)
        B, _, T, _ = attn[0].shape
        self.sum = ent.cpu() if self.sum is None else self.sum + ent.cpu()
        self.nan = nan.cpu() if self.nan is None else self.nan + nan.cpu()
        if self.T and T != self.T:
            raise ValueError(f"All batches must have the same sequence length (got {self.T} and {T}).")
        self.T, self.rows, self.seqs = T, self.rows + B * T, self.seqs + B

    def report(self) -> EntropyReport:
        if self.sum is None:
            raise ValueError("No tokens were analysed; pass at least one sequence.")
        return EntropyReport.from_head_matrix(self.sum / self.rows, seq_len=self.T, nan_counts=self.nan,
                                              n_sequences=self.seqs)


def entropy_from_attention(attn: Sequence[Tensor]) -> EntropyReport:
    """Entropy report from one batch of per-layer attention probabilities (L tensors (B, H, T, T))."""
    acc = _Accumulator()
    acc.add(attn)
    return acc.report()


@torch.no_grad()
def attention_entropy(model: nn.Module, tokens: Tensor | Iterable[Tensor], *, batch_size: int = 8) -> EntropyReport:
    """Head-entropy matrix, layer means, headwise bins, overload/collapse, NaN counts and ceilings.

    Runs ``model(batch, return_attn=True)`` in eval mode (restoring the previous mode afterwards) and
    averages over every sequence and query position, as spec §6.1 defines.

    Args:
        model: a ``PIGPT`` (or any module whose forward accepts ``return_attn=True`` and returns
            ``.attn``, a list of (B, H, T, T) probabilities).
        tokens: (N, T) or (T,) token ids, split into batches of ``batch_size``; or an iterable of
            (B, T) batches (e.g. a data loader).
        batch_size: sequences per forward when ``tokens`` is a tensor.

    Returns:
        ``EntropyReport``.
    """
    if isinstance(tokens, Tensor):
        if tokens.dim() == 1:
            tokens = tokens.unsqueeze(0)
        if tokens.dim() != 2:
            raise ValueError(f"tokens must be (N, T) or (T,), got shape {tuple(tokens.shape)}.")
        batches: Iterable[Tensor] = tokens.split(batch_size)
    else:
        batches = tokens
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    acc = _Accumulator()
    was_training = model.training
    model.eval()
    try:
        for batch in batches:
            acc.add(model(batch.to(device), return_attn=True).attn)
    finally:
        model.train(was_training)
    return acc.report()


class EntropyRegularizer(nn.Module):
    """Entropy regularization loss L_ent of spec §6.2 with learnable thresholds theta (L, H).

    The trainer owns this module (its ``theta`` is training-only state, reported apart from the model's
    parameters and saved alongside the checkpoint) and adds it to the optimizer without weight decay::

        reg = EntropyRegularizer.for_model(model)
        out = model(tokens, return_attn=True)
        loss = next_token_loss(out.logits, tokens) + reg.lambda_eff(B, T) * reg(out.attn)

    pen(delta) = delta^2 where |delta| > gamma * E_max, else 0 (two-sided), delta = e - theta * E_max,
    E_max = ln T_k. ``sum`` (default, what the published code computes):
    (1/L) sum_l (1/H) sum_h sum_b sum_i pen(e_{b,l,h,i} - theta_{l,h} E_max). ``mean`` (Algorithm 1):
    average e over positions first, then the penalty, then mean over b, h, l.
    """

    def __init__(self, n_layer: int, n_head: int, config: EntropyRegConfig | None = None) -> None:
        super().__init__()
        self.config = config or EntropyRegConfig(enabled=True)
        self.theta = nn.Parameter(torch.full((n_layer, n_head), float(self.config.threshold_init)))

    @classmethod
    def for_model(cls, model: nn.Module) -> EntropyRegularizer:
        """Thresholds shaped for ``model`` (a PIGPT) with its config's ``entropy_reg`` settings."""
        cfg = model.config
        return cls(cfg.n_layer, cfg.n_head, cfg.entropy_reg)

    @property
    def lambda_(self) -> float:
        return self.config.lambda_

    def lambda_eff(self, batch_size: int, seq_len: int) -> float:
        """lambda scaled to keep the paper's relative strength: lambda * (128 * 128) / (B * T) under ``sum``.

        This is the spec's recommendation (§6.2), not the paper's; ``mean`` does not grow with B*T.
        """
        if self.config.reduction == "mean":
            return self.config.lambda_
        return self.config.lambda_ * (128 * 128) / (batch_size * seq_len)

    def forward(self, attn: Sequence[Tensor]) -> Tensor:
        """L_ent (not multiplied by lambda).

        Args:
            attn: one (B, H, T, T) probability tensor per block, as ``PIGPT(..., return_attn=True).attn``.
        Returns:
            scalar tensor; gradients reach the attention (hence the model) and ``theta``.
        """
        if len(attn) != self.theta.shape[0]:
            raise ValueError(f"Got attention for {len(attn)} blocks but the regularizer has thresholds for "
                             f"{self.theta.shape[0]}; build it with EntropyRegularizer.for_model(model).")
        per_layer = []
        for layer, a in enumerate(attn):
            T = a.shape[-1]
            emax = math.log(T)
            margin = self.config.gamma * emax
            e = position_entropy(a, self.config.eps)  # (B, H, T)
            if self.config.reduction == "mean":
                e = e.mean(dim=-1)  # (B, H): average over query positions before the penalty
            target = (self.theta[layer] * emax).view(1, -1, *([1] * (e.dim() - 2)))  # (1, H[, 1])
            delta = e - target
            pen = torch.where(delta.abs() > margin, delta.square(), torch.zeros_like(delta))
            if self.config.reduction == "sum":
                per_layer.append(pen.sum(dim=(0, 2)).mean())  # sum over b, i; mean over heads
            else:
                per_layer.append(pen.mean(dim=0).mean())  # mean over b, then heads
        return torch.stack(per_layer).mean()

    def extra_repr(self) -> str:
        c = self.config
        return f"theta={tuple(self.theta.shape)}, gamma={c.gamma}, reduction={c.reduction}, lambda_={c.lambda_}"
