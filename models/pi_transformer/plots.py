"""PNG figures of the entropy analysis (spec §12), in the style of 2501.03489's figures.

Uses matplotlib's object API with the Agg canvas (no pyplot, so no global backend state is touched) and
writes every file atomically through ``zoo.core.fileio.atomic_path``.
"""
from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from torch import Tensor
from zoo.models.pi_transformer.entropy import EntropyReport

from zoo.core.fileio import atomic_path

BIN_LABELS = ("[0, M/4)", "[M/4, M/2)", "[M/2, 3M/4)", "[3M/4, M]")


def _save(fig: Figure, path: str | os.PathLike[str]) -> Path:
    FigureCanvasAgg(fig)
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    return Path(path)


def _matrix_heatmap(ax, matrix: Tensor, *, fmt: str, cmap: str, vmin: float | None, vmax: float | None,
                    xlabel: str, ylabel: str):
    m = matrix.detach().double().cpu()
    L, H = m.shape
    im = ax.imshow(m.numpy(), cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto")
    fontsize = max(4.0, min(9.0, 110.0 / max(L, H)))
    for i in range(L):
        for j in range(H):
            v = float(m[i, j])
            text = "nan" if math.isnan(v) else format(v, fmt)
            ax.text(j, i, text, ha="center", va="center", fontsize=fontsize,
                    color="white" if not math.isnan(v) and im.norm(v) < 0.6 else "black")  # dark cells
    ax.set_xticks(range(H))
    ax.set_yticks(range(L))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    return im


def plot_head_entropy(report: EntropyReport | Tensor, path: str | os.PathLike[str], *, title: str = "",
                      seq_len: int | None = None) -> Path:
    """Annotated L x H head-entropy heatmap (values in the cells, like 2501.03489 Figure 3).

    Args:
        report: an ``EntropyReport`` or an (L, H) matrix in nats (then pass ``seq_len`` for the ceilings).
        path: PNG file to write.
    """
    head = report.head if isinstance(report, EntropyReport) else report
    T = report.seq_len if isinstance(report, EntropyReport) else seq_len
    L, H = head.shape
    fig = Figure(figsize=(max(5.0, 0.55 * H + 2), max(3.5, 0.45 * L + 1.5)))
    ax = fig.add_subplot(1, 1, 1)
    vmax = math.log(T) if T else None
    im = _matrix_heatmap(ax, head, fmt=".2f", cmap="viridis", vmin=0.0, vmax=vmax, xlabel="head", ylabel="layer")
    fig.colorbar(im, ax=ax, label="entropy (nats)" + (f", max ln T = {math.log(T):.2f}" if T else ""))
    ax.set_title(title or "Head entropy" + (f" (T = {T})" if T else ""))
    return _save(fig, path)


def plot_headwise_distribution(distributions: Mapping[str, Sequence[float]], path: str | os.PathLike[str], *,
                               title: str = "Headwise entropy distribution") -> Path:
    """Grouped bars: % of heads per entropy bin for each variant (2501.03489 Figure 2a).

    Args:
        distributions: variant name -> four bin fractions (``EntropyReport.bins``), in [0, 1].
    """
    if not distributions:
        raise ValueError("plot_headwise_distribution needs at least one variant's bins.")
    names = list(distributions)
    fig = Figure(figsize=(max(6.0, 1.3 * len(names) + 3), 4.0))
    ax = fig.add_subplot(1, 1, 1)
    width = 0.8 / len(BIN_LABELS)
    for b, label in enumerate(BIN_LABELS):
        xs = [i + (b - 1.5) * width for i in range(len(names))]
        ys = [100.0 * float(distributions[n][b]) for n in names]
        bars = ax.bar(xs, ys, width=width, label=label)
        for bar, y in zip(bars, ys):
            ax.text(bar.get_x() + bar.get_width() / 2, y + 0.5, f"{y:.0f}", ha="center", va="bottom", fontsize=7)
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, rotation=20, ha="right")
    ax.set_ylabel("% of heads")
    ax.set_ylim(0, 105)
    ax.legend(title="entropy bin (M = max head entropy)", fontsize=8)
    ax.set_title(title)
    return _save(fig, path)


def plot_thresholds(theta: Tensor, path: str | os.PathLike[str], *, title: str = "Learned entropy thresholds") -> Path:
    """Heatmap of the learned thresholds theta (L x H) with per-layer mean and std (2501.03489 Figure 6).

    Args:
        theta: (L, H) thresholds, e.g. ``EntropyRegularizer.theta``.
    """
    theta = theta.detach().double().cpu()
    L, H = theta.shape
    fig = Figure(figsize=(max(8.0, 0.7 * H + 6), max(3.5, 0.45 * L + 1.5)))
    grid = fig.add_gridspec(1, 2, width_ratios=(3, 1), wspace=0.35)
    ax, ax_stats = fig.add_subplot(grid[0]), fig.add_subplot(grid[1])
    im = _matrix_heatmap(ax, theta, fmt=".2f", cmap="magma", vmin=None, vmax=None, xlabel="head", ylabel="layer")
    fig.colorbar(im, ax=ax, label="theta (fraction of ln T)")
    ax.set_title(title)
    mean, std = theta.mean(dim=1), theta.std(dim=1, unbiased=False)
    ax_stats.errorbar(mean.numpy(), range(L), xerr=std.numpy(), fmt="o", capsize=3)
    ax_stats.invert_yaxis()
    ax_stats.set_yticks(range(L))
    ax_stats.set_xlabel("per-layer mean ± std")
    ax_stats.set_ylabel("layer")
    ax_stats.grid(alpha=0.3)
    return _save(fig, path)


def plot_layer_entropy_curves(steps: Sequence[int], layer_means: Sequence[Sequence[float]],
                              path: str | os.PathLike[str], *, seq_len: int | None = None,
                              title: str = "Layerwise mean entropy during training") -> Path:
    """Per-layer mean entropy against training step (2501.03489 Figure 5), one line per layer.

    Args:
        steps: N logging steps.
        layer_means: N rows of L per-layer means (``EntropyReport.layer`` at each step).
    """
    if len(steps) != len(layer_means) or not steps:
        raise ValueError(f"steps ({len(steps)}) and layer_means ({len(layer_means)}) must be equally long, non-empty.")
    return _per_layer_lines(steps, layer_means, path, ylabel="mean entropy (nats)", title=title,
                            ceiling=math.log(seq_len) if seq_len else None)


def plot_nan_counts(steps: Sequence[int], nan_counts: Sequence[Sequence[float]], path: str | os.PathLike[str], *,
                    title: str = "NaN count in attention during training") -> Path:
    """Per-layer NaN count of the attention matrices against training step (the reference's instability log)."""
    if len(steps) != len(nan_counts) or not steps:
        raise ValueError(f"steps ({len(steps)}) and nan_counts ({len(nan_counts)}) must be equally long, non-empty.")
    return _per_layer_lines(steps, nan_counts, path, ylabel="NaN entries per head", title=title)


def _per_layer_lines(steps: Sequence[int], rows: Sequence[Sequence[float]], path: str | os.PathLike[str], *,
                     ylabel: str, title: str, ceiling: float | None = None) -> Path:
    """One line per layer of an (N steps, L layers) table against step, with an optional "ln T" ceiling."""
    values = torch.tensor([list(map(float, row)) for row in rows], dtype=torch.float64)  # (N, L)
    fig = Figure(figsize=(7.0, 4.0))
    ax = fig.add_subplot(1, 1, 1)
    for layer in range(values.shape[1]):
        ax.plot(list(steps), values[:, layer].numpy(), label=f"L{layer}")
    if ceiling is not None:
        ax.axhline(ceiling, ls="--", color="gray", lw=1, label="ln T")
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=7, ncol=2)
    ax.set_title(title)
    return _save(fig, path)
