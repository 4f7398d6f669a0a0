"""``zoo pi-measure MODEL --seq-len T [--engine spu] [--protocol cheetah|semi2k] [--json]`` -> ``zoo.pi_measure``."""
from __future__ import annotations

import argparse
import json

from zoo.mpc.measure import ENGINES, PROTOCOLS, REFUSED_ENGINES, pi_measure


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "pi-measure", help="measure a PI-GPT forward under real two-party computation (SPU)",
        description="Run one forward of a PI-GPT (T tokens in, next-token logits out) under SPU's 2PC protocols "
                    "between two local parties and report the bytes both parties sent, the rounds (SPU send "
                    "actions), the wall time and the max logit difference to the PyTorch model. Needs the "
                    "isolated environment .venv-mpc: `make mpc`.",
        epilog="examples:\n  zoo pi-measure pi-gpt2-tiny-sm-ln-g --seq-len 16\n"
               "  zoo pi-measure pi-gpt2-tiny-ereg-sm-t-scfuffn --seq-len 32 --protocol semi2k --json\n"
               "  zoo pi-measure pi-gpt2-tiny-sm-r --weights runs/sm-r/best.safetensors --seq-len 64",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", help="registry name, e.g. pi-gpt2-tiny-sm-ln-g (zoo list 'pi-*')")
    p.add_argument("--weights", default=None, help="effzoo .safetensors checkpoint (default: seeded random init)")
    p.add_argument("--seq-len", type=int, default=None, help="T, input tokens (default: the model's size)")
    p.add_argument("--engine", default="spu", choices=(*ENGINES, *REFUSED_ENGINES), help="2PC engine (default spu)")
    p.add_argument("--protocol", default="cheetah", choices=PROTOCOLS, help="SPU protocol (default cheetah)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random tokens and random init (default 0)")
    p.add_argument("--all-logits", action="store_true",
                   help="compute and compare every position's logits (default: the last one, one generated token)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    return p


def run(args: argparse.Namespace) -> int:
    if args.seq_len is not None and args.seq_len < 1:
        raise ValueError(f"--seq-len must be a positive integer (got {args.seq_len}).")
    m = pi_measure(args.name, weights=args.weights, seq_len=args.seq_len, engine=args.engine, protocol=args.protocol,
                   seed=args.seed, all_logits=args.all_logits)
    if args.json:
        print(json.dumps(m.to_dict(), indent=2))
        return 0
    rows = [
        ("model", f"{m.model}  ({m.variant}, weights: {m.weights})"),
        ("engine", f"{m.engine} {m.engine_version}, protocol {m.protocol}, 2 local parties"),
        ("seq_len", str(m.seq_len)),
        ("bytes sent", f"{m.bytes_sent:,} ({m.bytes_sent / 1e6:.2f} MB; client {m.bytes_per_party[0]:,}, "
                       f"server {m.bytes_per_party[1]:,})"),
        ("rounds", f"{m.rounds:,} (SPU send actions of the busier party)"),
        ("wall time", f"{m.wall_s:.1f} s (compile {m.compile_s:.1f} s excluded; in-memory link, no network)"),
        ("max |logit diff|", f"{m.max_abs_logit_diff:.2e} vs PyTorch ({m.logits_compared})"),
    ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    return 0
