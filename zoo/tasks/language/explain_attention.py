"""Attention-entropy maps of a PI-GPT: per layer, head and query position, so ``zoo explain`` covers both families.

Why: for the reduced-nonlinearity transformers the question "what does the model attend to" is answered by
the attention rows themselves, and their entropy is what the PI recipe steers (spec pi_transformer.md §6:
entropic overload in LN-free models, collapse in softmax-only ones). ``zoo entropy`` reports the (L, H)
head means; this keeps the query-position axis, which shows *where* in the context a head is sharp or
diffuse (position i can at most reach ln(i + 1) under the causal mask), and the first sequence's maps.
"""
from __future__ import annotations

import math
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from zoo.core.fileio import atomic_path
from zoo.models.pi_transformer.entropy import EntropyReport, position_entropy


@dataclass
class AttentionExplanation:
    """Attention-entropy maps of one model on a token set.

    Attributes:
        position: float64 (L, H, T) entropy of each query position's attention row, mean over sequences (nats).
        first: float64 (L, H, T) the same for the first sequence alone (the map of one text).
        report: the (L, H) head summary of ``zoo entropy`` (mean of ``position`` over T).
        tokens: (T,) the first sequence's token ids.
    """

    position: Tensor
    first: Tensor
    report: EntropyReport
    tokens: Tensor

    @property
    def ceiling(self) -> Tensor:
        """(T,) ln(i + 1): the largest entropy query position i can have under the causal mask."""
        return torch.log(torch.arange(1, self.position.shape[-1] + 1, dtype=torch.float64))

    def to_dict(self) -> dict[str, Any]:
        """JSON view: the ``zoo entropy`` summary plus per-(layer, head) position curves and their statistics."""
        def r(values: Iterable[float]) -> list[float | None]:
            return [None if not math.isfinite(v) else round(float(v), 5) for v in values]

        L, H, T = self.position.shape
        ceil = self.ceiling
        heads = []
        for layer in range(L):
            for head in range(H):
                curve = self.position[layer, head]
                rel = curve[1:] / ceil[1:]  # position 0 attends only to itself: ceiling 0
                heads.append({"layer": layer, "head": head, "mean": float(curve.mean()),
                              "mean_fraction_of_ceiling": float(rel.mean()) if T > 1 else None,
                              "min_position": int(curve[1:].argmin()) + 1 if T > 1 else 0,
                              "position": r(curve.tolist()), "first_sequence": r(self.first[layer, head].tolist())})
        return {**self.report.to_dict(), "position_ceiling": r(ceil.tolist()), "heads": heads}


@torch.no_grad()
def explain_attention(model: nn.Module, tokens: Tensor, *, batch_size: int = 8) -> AttentionExplanation:
    """Per-position attention entropies of ``model`` on (N, T) token ids (eval mode, restored after).

    Raises:
        ValueError: ``tokens`` is not (N, T) with N, T >= 1, or the model does not return attention
            probabilities (``model(x, return_attn=True).attn``).
    """
    if tokens.dim() == 1:
        tokens = tokens.unsqueeze(0)
    if tokens.dim() != 2 or tokens.numel() == 0:
        raise ValueError(f"tokens must be (N, T) token ids, got shape {tuple(tokens.shape)}.")
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    was_training = model.training
    model.eval()
    total: Tensor | None = None
    first: Tensor | None = None
    nan = None
    try:
        for batch in tokens.split(batch_size):
            out = model(batch.to(device), return_attn=True)
            attn = getattr(out, "attn", None)
            if not attn:
                raise ValueError(f"{type(model).__name__} returned no attention probabilities; explain_attention "
                                 "needs a PI-GPT (forward(..., return_attn=True).attn).")
            ent = torch.stack([position_entropy(a.detach()).double() for a in attn], 1).cpu()  # (B, L, H, T)
            bad = torch.stack([torch.isnan(a).sum().double() / a.shape[1] for a in attn]).cpu()  # (L,)
            total = ent.sum(0) if total is None else total + ent.sum(0)
            nan = bad if nan is None else nan + bad
            first = ent[0] if first is None else first
    finally:
        model.train(was_training)
    assert total is not None and first is not None and nan is not None  # tokens has at least one row
    position = total / tokens.shape[0]  # (L, H, T)
    report = EntropyReport.from_head_matrix(position.mean(-1), seq_len=tokens.shape[1], nan_counts=nan,
                                            n_sequences=tokens.shape[0])
    return AttentionExplanation(position=position, first=first, report=report, tokens=tokens[0].cpu())


def plot_position_entropy(ex: AttentionExplanation, path: str | os.PathLike[str], *, title: str = "",
                          which: str = "position") -> Path:
    """One heatmap per layer: heads x query positions, entropy as a fraction of the causal ceiling ln(i + 1).

    The fraction, not nats, so early positions (ceiling near 0) and late ones share one colour scale:
    1 = uniform over the visible context, 0 = all mass on one token.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # deferred: matplotlib only for drawing
    from matplotlib.figure import Figure

    maps = ex.position if which == "position" else ex.first
    L, H, T = maps.shape
    ceil = ex.ceiling.clamp_min(1e-12)
    rel = (maps / ceil).clamp(0, 1)
    rel[..., 0] = float("nan")  # position 0 sees one token: no entropy to speak of
    fig = Figure(figsize=(min(14.0, 3 + 0.06 * T), 1.2 + 0.35 * H * L))
    FigureCanvasAgg(fig)
    im = None
    for layer in range(L):
        ax = fig.add_subplot(L, 1, layer + 1)
        im = ax.imshow(rel[layer].numpy(), aspect="auto", cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
        ax.set_ylabel(f"L{layer}\nhead", fontsize=7)
        ax.set_yticks(range(H))
        ax.tick_params(labelsize=6)
        if layer < L - 1:
            ax.set_xticks([])
    fig.axes[-1].set_xlabel("query position")
    fig.colorbar(im, ax=fig.axes, label="entropy / ln(i + 1)", fraction=0.03)
    fig.suptitle(title or "attention entropy per layer, head and position", fontsize=9)
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    return Path(path)
