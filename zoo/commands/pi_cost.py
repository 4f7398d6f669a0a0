"""``zoo pi-cost NAME [--seq-len N] [--dataset D] [--json]`` -> ``zoo.pi_cost`` + ``nonlinearity_census``."""
from __future__ import annotations

import argparse
import json

from zoo.models.pi_transformer.census import nonlinearity_census
from zoo.models.pi_transformer.cost import DATASETS, pi_cost
from zoo.models.pi_transformer.variants import config_for_name


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "pi-cost", help="private-inference cost (comm, latency, savings) of a PI-GPT model",
        description="Communication (GB) and latency (minutes) of 2PC private inference of one token from T input "
                    "tokens, savings against SM+LN+G, and the nonlinearity census. Published rows are returned "
                    "exactly with their table; other configs are estimated (spec pi_transformer.md §8).",
        epilog="examples:\n  zoo pi-cost pi-gpt2-small-ereg-sm-t-scfuffn\n"
               "  zoo pi-cost pi-gpt2-small-sm-ln-r --seq-len 256\n"
               "  zoo pi-cost pi-gpt2-small-sm-scfuffn --seq-len 512 --dataset languini --json",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", help="registry name, e.g. pi-gpt2-small-sm-ln-g (zoo list 'pi-*')")
    p.add_argument("--seq-len", type=int, default=128, help="T, input tokens (default 128)")
    p.add_argument("--dataset", default="codeparrot", choices=DATASETS,
                   help="tokenizer the cost is calibrated for (default codeparrot)")
    p.add_argument("--ffn-layers", type=int, default=None,
                   help="AERO pruning: keep an FFN only in the first N blocks (e.g. 6 for 'i6')")
    p.add_argument("--ln-share", type=float, default=1 / 3,
                   help="LayerNorm share of the composite LN+2*ReLU coefficient for estimates (default 1/3)")
    p.add_argument("--json", action="store_true", help="print JSON")
    return p


def run(args: argparse.Namespace) -> int:
    if args.seq_len <= 0:
        raise ValueError(f"--seq-len must be a positive integer (got {args.seq_len}).")
    cfg = config_for_name(args.name, context_length=args.seq_len, ffn_layers=args.ffn_layers)
    cost = pi_cost(cfg, seq_len=args.seq_len, dataset=args.dataset, ln_share=args.ln_share)
    census = nonlinearity_census(cfg, args.seq_len)
    if args.json:
        print(json.dumps({"model": args.name, **cost.to_dict(), "census": census.to_dict()}, indent=2))
        return 0
    rows = [
        ("model", args.name),
        ("variant", f"{cost.variant}  (L={cost.n_layer}, T={cost.seq_len}, {cost.dataset})"),
        ("nonlinear ops", census.paper_string),
        ("FFN / attn FLOPs", census.flops_string),
        ("communication", f"{cost.comm_gb:.2f} GB"),
        ("latency", f"{cost.latency_min:.2f} min"),
        ("savings vs SM+LN+G", f"{cost.savings.comm:.2f}x comm, {cost.savings.latency:.2f}x latency "
                               f"(baseline {cost.baseline_comm_gb:.2f} GB, {cost.baseline_latency_min:.2f} min)"),
        ("provenance", cost.provenance),
    ]
    if cost.estimate_error is not None:  # a measured row: what the additive model would have said
        rows.append(("estimate", f"{cost.estimated_comm_gb:.4g} GB, {cost.estimated_savings_comm:.2f}x comm "
                                 f"(error {100 * cost.estimate_error['comm']:+.0f} % on bytes, "
                                 f"{100 * cost.estimate_error['savings_comm']:+.0f} % on the saving)"))
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    for caveat in cost.caveats:
        print(f"note: {caveat}")
    return 0
