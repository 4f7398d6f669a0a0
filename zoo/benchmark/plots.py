"""The Pareto plots: detectors (GFLOPs vs mAP50-95, and measured latency per runtime vs mAP50-95) and PI
transformers (cost vs perplexity).

Measured points are filled, reported ones hollow, and each group gets its own Pareto front (a step line
through the points no other point beats on both axes), because a front across different datasets (COCO
reported, synthetic measured) would compare numbers that are not comparable. Files are written
atomically with matplotlib's Agg backend.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from zoo.core.fileio import atomic_path
from zoo.tasks import DETECTION, LANGUAGE_MODELING


def pareto_front(points: Sequence[tuple[float, float]], *, maximize_y: bool) -> list[tuple[float, float]]:
    """Points not dominated by any other: lower x and better y (higher if ``maximize_y``, else lower).

    Returns them sorted by x. A point dominates another when it is at least as good on both axes and
    strictly better on one.
    """
    pts = sorted({(float(x), float(y)) for x, y in points if math.isfinite(x) and math.isfinite(y)},
                 key=lambda p: (p[0], -p[1] if maximize_y else p[1]))
    front: list[tuple[float, float]] = []
    for x, y in pts:
        if not front or (y > front[-1][1] if maximize_y else y < front[-1][1]):
            front.append((x, y))
    return front


def _figure(ncols: int = 1):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, ncols, figsize=(6.4 * ncols, 4.4), dpi=80, squeeze=False)
    return plt, fig, list(axes[0])


def _save(plt: Any, fig: Any, path: Path) -> Path:
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", pil_kwargs={"optimize": True})
    plt.close(fig)
    return path


def _scatter(ax: Any, pts: list[tuple[float, float, str]], *, filled: bool, color: str, label: str,
             maximize_y: bool, marker: str = "o") -> None:
    if not pts:
        return
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    ax.scatter(xs, ys, s=40, marker=marker, label=label, zorder=3, edgecolors=color,
               facecolors=color if filled else "none", linewidths=1.5)
    for x, y, text in pts:
        ax.annotate(text, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7, color="0.25")
    front = pareto_front([(x, y) for x, y, _ in pts], maximize_y=maximize_y)
    if len(front) > 1:
        ax.step([p[0] for p in front], [p[1] for p in front], where="post", color=color, alpha=0.6,
                linestyle="-" if filled else "--", label=f"Pareto front ({label.split(' (')[0]})")


def _empty(ax: Any, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, fontsize=9, color="0.4", wrap=True)


def plot_pareto_detectors(report: dict[str, Any], path: str | Path) -> Path:
    """GFLOPs (measured, paper convention) vs mAP50-95: reported COCO points and measured points."""
    plt, fig, (ax,) = _figure()
    rep, mea = [], []
    datasets = set()
    for e in report["models"]:
        if e["task"] != DETECTION:
            continue
        short = e["name"].removeprefix("leyolo-")
        for r in e.get("reported", []):
            cost = e["cost"].get(str(r["input_size"]))
            if r["metric"] == "map50-95" and cost and cost.get("gflops"):
                rep.append((cost["gflops"]["value"], r["value"], f"{short}@{r['input_size']}"))
        q = e["quality"]["measured"]
        if q is not None:
            cost = e["cost"].get(str(q["imgsz"]))
            if cost and cost.get("gflops"):
                mea.append((cost["gflops"]["value"], q["value"], f"{short}@{q['imgsz']}"))
            datasets.add(q["dataset"].split(" (")[0])
    _scatter(ax, rep, filled=False, color="tab:blue", label="reported (paper, COCO val2017)", maximize_y=True)
    _scatter(ax, mea, filled=True, color="tab:red", marker="s", maximize_y=True,
             label=f"measured ({', '.join(sorted(datasets))})")
    return _finish(plt, fig, ax, path, shown=bool(rep or mea), xlabel="GFLOPs (measured, paper convention, batch 1)",
                   ylabel="mAP50-95 (%)", title="Detectors: cost vs accuracy",
                   empty="no detector with a reported or measured mAP in this selection")


def _finish(plt: Any, fig: Any, ax: Any, path: str | Path, *, shown: bool, xlabel: str, ylabel: str, title: str,
            empty: str) -> Path:
    """Labels, grid, legend (or the reason the plot is empty), then the atomic write."""
    if not shown:
        _empty(ax, empty)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    if shown:
        ax.legend(fontsize=7, loc="lower right")
    return _save(plt, fig, Path(path))


def plot_pareto_pi(report: dict[str, Any], path: str | Path) -> Path:
    """Left: measured perplexity vs measured nonlinearity count; right: reported perplexity vs PI comm."""
    plt, fig, (left, right) = _figure(2)
    mea, rep_pub, rep_est = [], [], []
    corpus = ""
    for e in report["models"]:
        if e["task"] != LANGUAGE_MODELING:
            continue
        T = str(e["input_size"])
        short = (e.get("variant") or e["name"])
        q = e["quality"]["measured"]
        cost = e["cost"].get(T)
        if q is not None and cost and cost.get("nonlinear"):
            mea.append((cost["nonlinear"]["value"] / 1e6, q["value"], short))
            corpus = q["dataset"].split(" (")[0]
        pi = (e.get("pi_cost") or {}).get(T)
        for r in e.get("reported", []):
            if r["metric"] == "ppl" and r["input_size"] == e["input_size"] and pi and pi["kind"] != "measured":
                # the right panel pairs papers' PPL with papers' or estimated cost; our measurements are tiny-only
                (rep_pub if pi["kind"] == "reported" else rep_est).append(
                    (pi["comm_gb"], r["value"], f"{short} ({e['size']})"))
    _scatter(left, mea, filled=True, color="tab:red", marker="s", maximize_y=False,
             label=f"measured ({corpus or 'held-out split'})")
    if not mea:
        _empty(left, "no transformer with a measured perplexity in this selection")
    left.set_xlabel("nonlinear elements per forward (M, measured census)")
    left.set_ylabel("perplexity (measured)")
    left.set_title("Trained by the benchmark: nonlinearities vs perplexity", fontsize=10)
    _scatter(right, rep_pub, filled=False, color="tab:blue", maximize_y=False,
             label="reported PPL, published PI cost")
    _scatter(right, rep_est, filled=False, color="tab:purple", marker="^", maximize_y=False,
             label="reported PPL, estimated PI cost (spec §8.3)")
    if not rep_pub and not rep_est:
        _empty(right, "no transformer with a reported perplexity in this selection")
    right.set_xlabel("PI communication per token (GB, 2PC)")
    right.set_ylabel("perplexity (reported, CodeParrot)")
    right.set_title("Papers: private-inference cost vs perplexity", fontsize=10)
    for ax in (left, right):
        ax.grid(alpha=0.3)
        if ax.collections:
            ax.legend(fontsize=7)
    return _save(plt, fig, Path(path))


RUNTIME_STYLE = {"eager": ("eager PyTorch", "tab:gray", "o"), "ort-fp32": ("onnxruntime fp32", "tab:blue", "s"),
                 "ort-int8": ("onnxruntime int8", "tab:cyan", "D"), "ov-fp32": ("OpenVINO fp32", "tab:red", "^"),
                 "ov-int8": ("OpenVINO int8", "tab:orange", "v")}


def latency_points(report: dict[str, Any]) -> dict[str, list[tuple[float, float, str]]]:
    """Per runtime: (median ms, reported mAP50-95 at the timed size, label) of every timed detector.

    A detector counts only where its paper reports an mAP at the size it was timed at (the deployment
    stage times the paper's size unless ``--imgsz`` says otherwise): a latency at 640 next to an mAP at
    480 would be a point that exists nowhere.
    """
    out: dict[str, list[tuple[float, float, str]]] = {}
    for e in report["models"]:
        dep = e.get("deployment") if e["task"] == DETECTION else None
        if not dep:
            continue
        acc = next((r["value"] for r in e.get("reported", []) if r["metric"] == "map50-95"
                    and r["input_size"] == dep["input_size"]), None)
        if acc is None:
            continue
        for key, t in dep["runtimes"].items():
            label = f"{e['name'].removeprefix('leyolo-')}@{dep['input_size']}"
            out.setdefault(key, []).append((t["median_ms"], acc, label))
    return out


def plot_pareto_latency(report: dict[str, Any], path: str | Path) -> Path:
    """Measured batch-1 latency per runtime vs reported COCO mAP50-95, one Pareto front per runtime.

    int8 points sit at the float model's reported mAP (hollow markers): their accuracy change is the
    agreement / mAP change in ``bench.md``. YOLO11n / YOLOv8n (stars) are the reference points.
    """
    plt, fig, (ax,) = _figure()
    fig.set_size_inches(8.0, 5.0)
    points = latency_points(report)
    fastest: dict[str, tuple[float, float]] = {}  # one label per model, at its fastest runtime
    for key, pts in points.items():
        label, color, marker = RUNTIME_STYLE.get(key, (key, "0.3", "o"))
        int8 = key.endswith("int8")
        front = pareto_front([(x, y) for x, y, _ in pts], maximize_y=True)
        ax.plot([p[0] for p in front], [p[1] for p in front], color=color, alpha=0.6, linestyle="--" if int8 else "-",
                drawstyle="steps-post", marker=marker, markersize=7, markerfacecolor="none" if int8 else color,
                markeredgecolor=color, markeredgewidth=1.5, label=label + (" (at the float mAP)" if int8 else ""))
        for x, y, text in pts:
            ax.scatter([x], [y], s=45, marker=marker, zorder=3, edgecolors=color,
                       facecolors="none" if int8 else color, linewidths=1.5)
            if x < fastest.get(text, (float("inf"), 0))[0]:
                fastest[text] = (x, y)
    for text, (x, y) in fastest.items():
        ax.annotate(text, (x, y), textcoords="offset points", xytext=(-4, 7), ha="right", fontsize=8, color="0.2")
    refs = [(r, key, t) for r in report.get("deployment_references", []) for key, t in r["runtimes"].items()]
    for r, key, t in refs:
        _, color, _ = RUNTIME_STYLE.get(key, (key, "0.3", "o"))
        ax.scatter([t["median_ms"]], [r["reported"]["value"]], s=110, marker="*", color=color, zorder=4,
                   edgecolors="black", linewidths=0.5)
    for r in report.get("deployment_references", []):
        x = min(t["median_ms"] for t in r["runtimes"].values())
        ax.annotate(r["name"], (x, r["reported"]["value"]), textcoords="offset points", xytext=(-6, 6), ha="right",
                    fontsize=8, color="0.2")
    if refs:
        ax.scatter([], [], s=110, marker="*", color="white", edgecolors="black",
                   label="YOLO11n / YOLOv8n, colour = runtime (reported mAP)")
    threads = next((e["deployment"]["threads"] for e in report["models"] if e.get("deployment")), None)
    return _finish(plt, fig, ax, path, shown=bool(points or refs),
                   xlabel=f"latency, batch 1, {threads} thread(s) (ms, measured, median of interleaved blocks)",
                   ylabel="mAP50-95 (%, reported, COCO val2017)",
                   title="Detectors: measured latency per runtime vs accuracy",
                   empty="no detector timed at a size its paper reports an mAP at (run without --imgsz / --no-latency)")
