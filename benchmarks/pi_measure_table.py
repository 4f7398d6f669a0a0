"""Measured 2PC cost of the 12 tiny PI-GPT variants (SPU) next to ``zoo.pi_cost``'s estimate.

For each variant and T: bytes both parties sent and rounds (SPU send actions) of one forward under SPU
(``zoo.pi_measure``), the ratio of the SM+LN+G baseline's bytes to the variant's (its measured saving),
the cost model's saving for the same config (``zoo.pi_cost``, estimated for tiny sizes) and the
estimate's relative error. It then checks, on measured bytes, the direction of each saving the papers
claim (LayerNorm-free, FFN-activation-free, fused FFN), and plots measured vs estimated savings.

Each measurement is appended to ``OUT/rows.json`` as it finishes, and rows already there are reused, so
an interrupted run resumes. Run it on a shared machine under the CPU lock::

    flock -s /tmp/effzoo-cpu.lock python benchmarks/pi_measure_table.py                  # all 12 x T16/32/64
    flock -s /tmp/effzoo-cpu.lock python benchmarks/pi_measure_table.py --variants sm-ln-g ereg-sm-t-scfuffn
    python benchmarks/pi_measure_table.py --report-only     # table + plot from the rows measured so far
"""
from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
from pathlib import Path
from typing import Any

from tqdm import tqdm

import zoo
from zoo.core.fileio import write_json_atomic, write_text_atomic
from zoo.models.pi_transformer.variants import VARIANTS

# Baseline and the paper's proposed model first: the rows every conclusion needs.
ORDER = ["sm-ln-g", "ereg-sm-t-scfuffn", "sm-ln-r", "sm-ln", "sm-g", "sm-r", "sm", "sm-scffn", "sm-scfuffn",
         "sm-t-scfuffn", "sm-wn-ffn", "sm-sn-ffn"]
assert sorted(ORDER) == sorted(VARIANTS)
# (claim, cheaper variant, dearer variant): each pair differs in exactly the nonlinearity the claim removes.
CLAIMS = [
    ("LayerNorm-free", "sm-g", "sm-ln-g"), ("LayerNorm-free", "sm-r", "sm-ln-r"), ("LayerNorm-free", "sm", "sm-ln"),
    ("FFN-activation-free", "sm-ln", "sm-ln-g"), ("FFN-activation-free", "sm-ln", "sm-ln-r"),
    ("FFN-activation-free", "sm", "sm-r"), ("FFN-activation-free", "sm", "sm-g"),
    ("GELU -> ReLU", "sm-ln-r", "sm-ln-g"),
    ("fused FFN", "sm-scfuffn", "sm-scffn"),
    ("EReg(SM(t)+ScFuFFN) vs baseline", "ereg-sm-t-scfuffn", "sm-ln-g"),
]


def _name(variant: str) -> str:
    return f"pi-gpt2-tiny-{variant}"


def measure_rows(out: Path, variants: list[str], seq_lens: list[int], protocol: str) -> list[dict[str, Any]]:
    path = out / "rows.json"
    rows: list[dict[str, Any]] = json.loads(path.read_text()) if path.exists() else []
    done = {(r["variant"], r["seq_len"], r["protocol"]) for r in rows}
    todo = [(v, t) for t in seq_lens for v in variants if (v, t, protocol) not in done]
    for variant, T in tqdm(todo, desc="pi-measure", file=sys.stderr):
        m = zoo.pi_measure(_name(variant), seq_len=T, protocol=protocol)
        row = {k: v for k, v in m.to_dict().items() if k != "ops"}
        row.update(variant=variant, paper_name=VARIANTS[variant][0],
                   ops={k: v["bytes"] for k, v in m.ops.items() if v["bytes"]})
        rows.append(row)
        write_json_atomic(path, rows)
        tqdm.write(f"{variant} T={T}: {m.bytes_sent / 1e6:.1f} MB, {m.rounds} rounds, {m.wall_s:.0f} s, "
                   f"max|dlogit| {m.max_abs_logit_diff:.1e}", file=sys.stderr)
    return rows


def table(rows: list[dict[str, Any]], protocol: str) -> tuple[list[dict[str, Any]], str]:
    """Rows with the measured and estimated savings, and the markdown table."""
    by = {(r["variant"], r["seq_len"]): r for r in rows if r["protocol"] == protocol}
    out, lines = [], []
    lines.append("| variant | T | MB sent | rounds | measured saving vs SM+LN+G | pi_cost saving (estimated) | "
                 "estimate error | max abs logit diff |")
    lines.append("|---|---|---|---|---|---|---|---|")
    for T in sorted({t for _, t in by}):
        base = by.get(("sm-ln-g", T))
        for variant in ORDER:
            r = by.get((variant, T))
            if r is None:
                continue
            cost = zoo.pi_cost(_name(variant), seq_len=T)  # once measured, its estimate is kept beside it
            est = cost.estimated_savings_comm if cost.estimated_savings_comm is not None else cost.savings.comm
            meas = base["bytes_sent"] / r["bytes_sent"] if base else None
            err = est / meas - 1 if meas else None
            out.append({**r, "measured_saving": meas, "estimated_saving": est, "estimate_error": err})
            lines.append(f"| {r['paper_name']} | {T} | {r['bytes_sent'] / 1e6:.1f} | {r['rounds']:,} | "
                         f"{'%.2fx' % meas if meas else '-'} | {est:.2f}x | "
                         f"{'%+.0f%%' % (100 * err) if err is not None else '-'} | {r['max_abs_logit_diff']:.1e} |")
    return out, "\n".join(lines)


def claims(rows: list[dict[str, Any]]) -> str:
    """Each claimed saving's direction on measured bytes: dearer / cheaper bytes at every measured T."""
    by = {(r["variant"], r["seq_len"]): r for r in rows}
    Ts = sorted({t for _, t in by})
    lines = [f"| claim | cheaper | dearer | {' | '.join(f'T={t}' for t in Ts)} | direction holds |",
             "|---|---|---|" + "---|" * len(Ts) + "---|"]
    for claim, cheap, dear in CLAIMS:
        ratios = {t: by[(dear, t)]["bytes_sent"] / by[(cheap, t)]["bytes_sent"]
                  for t in Ts if (cheap, t) in by and (dear, t) in by}
        if ratios:
            cells = " | ".join(f"{ratios[t]:.2f}x" if t in ratios else "-" for t in Ts)
            holds = "yes" if all(r > 1 for r in ratios.values()) else "NO"
            lines.append(f"| {claim} | {VARIANTS[cheap][0]} | {VARIANTS[dear][0]} | {cells} | {holds} |")
    return "\n".join(lines)


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib  # noqa: PLC0415  (slow import, only for the figure)
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, ax = plt.subplots(figsize=(6.4, 5.2))
    pts = [r for r in rows if r["measured_saving"]]
    for T, marker in zip(sorted({r["seq_len"] for r in pts}), "osD^"):
        sel = [r for r in pts if r["seq_len"] == T]
        ax.scatter([r["estimated_saving"] for r in sel], [r["measured_saving"] for r in sel], marker=marker,
                   label=f"T={T}", alpha=0.8)
        for r in sel:
            ax.annotate(r["variant"], (r["estimated_saving"], r["measured_saving"]), fontsize=6, alpha=0.7)
    hi = max([1.0] + [max(r["estimated_saving"], r["measured_saving"]) for r in pts]) * 1.1
    ax.plot([0, hi], [0, hi], "k--", lw=0.8, label="estimate = measurement")
    ax.set_xlabel("communication saving vs SM+LN+G, zoo.pi_cost (estimated)")
    ax.set_ylabel("communication saving vs SM+LN+G, measured (SPU)")
    ax.set_title("tiny PI-GPT variants: measured vs estimated 2PC savings", fontsize=10)
    ax.set_xlim(0, hi)
    ax.set_ylim(0, hi)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variants", nargs="+", default=ORDER, choices=ORDER)
    ap.add_argument("--seq-lens", nargs="+", type=int, default=[16, 32, 64])
    ap.add_argument("--protocol", default="cheetah", choices=("cheetah", "semi2k"))
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/pi_measure"))
    ap.add_argument("--report-only", action="store_true", help="no new measurements")
    ap.add_argument("--cost-rows", action="store_true",
                    help="also print the MEASURED literal of zoo/models/pi_transformer/measured.py (Cheetah rows)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.report_only:
        path = args.out / "rows.json"
        rows = json.loads(path.read_text()) if path.exists() else []
    else:
        rows = measure_rows(args.out, args.variants, args.seq_lens, args.protocol)
    full, md = table(rows, args.protocol)
    text = (f"SPU {args.protocol}, 2 local parties, tiny PI-GPT (L4 H4 d128, V=256), random init, one forward of "
            f"T tokens -> next-token logits; machine: {platform.processor() or platform.machine()}, "
            f"python {platform.python_version()}\n\n{md}\n\nclaimed savings, measured:\n\n"
            f"{claims([r for r in rows if r['protocol'] == args.protocol])}\n\n(dearer / cheaper measured bytes; "
            f"> 1 means the removal saves communication)\n")
    write_text_atomic(args.out / f"table_{args.protocol}.md", text)
    if full:
        plot(full, args.out / f"measured_vs_estimated_{args.protocol}.png")
    print(text)
    if args.cost_rows:
        print(cost_rows(rows))
    return 0


def cost_rows(rows: list[dict[str, Any]]) -> str:
    """The Cheetah rows as the ``MEASURED`` literal that ``zoo.pi_cost`` reads."""
    sel = sorted((r for r in rows if r["protocol"] == "cheetah"),
                 key=lambda r: (r["seq_len"], ORDER.index(r["variant"])))
    body = "".join(f'    ("{_name(r["variant"])}", {r["seq_len"]}): ({r["bytes_sent"]}, {r["rounds"]}),\n' for r in sel)
    return "MEASURED: dict[tuple[str, int], tuple[int, int]] = {\n" + body + "}"


if __name__ == "__main__":
    sys.exit(main())
