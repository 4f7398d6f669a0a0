"""``zoo study pi [--config FILE] [--variants ...] [--out DIR]`` -> ``zoo.studies.pi_study.run_pi_study``."""
from __future__ import annotations

import argparse

from zoo.commands.train import parse_sets
from zoo.models.pi_transformer.variants import SIZES, VARIANTS
from zoo.studies.pi_study import run_pi_study

EPILOG = """examples:
  zoo study pi
  zoo study pi --config configs/pi_cpu_tiny.yaml --out runs/study-tiny
  zoo study pi --variants sm-ln-g sm-ln-r ereg-sm-t-scfuffn --max-steps 100
  zoo study pi --config configs/pi_cpu_tiny.yaml --set max_steps=1000 --set seed=1 --out runs/study-1k

Trains pi-gpt2-SIZE-VARIANT for each variant with the same recipe, seed and budget, then writes
OUT/study.md and OUT/study.json (perplexity, nonlinear ops, FFN/attention FLOPs, comm, latency, savings,
headwise entropy; which published orderings hold) and OUT/headwise_distribution.png. Finished variants
are reused and interrupted ones resumed when the command is run again with the same --out.
"""


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("study", help="train every PI-GPT variant alike and tabulate perplexity vs PI cost",
                       description="The study of spec pi_transformer.md §12: every variant trained the same way, "
                                   "perplexity next to nonlinearity count and private-inference cost.",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("family", choices=("pi",), help="model family to study (pi: the PI-GPT variants)")
    p.add_argument("--config", default=None, help="LM recipe (default: the CPU recipe, configs/pi_cpu_tiny.yaml)")
    p.add_argument("--size", default="tiny", choices=tuple(SIZES), help="model size of every variant (tiny)")
    p.add_argument("--variants", nargs="+", default=None, metavar="VARIANT",
                   help=f"variants (default all): {' '.join(VARIANTS)}")
    p.add_argument("--out", default="runs/study-pi", help="study folder (default runs/study-pi)")
    p.add_argument("--max-steps", type=int, default=None, dest="max_steps", help="iterations per variant")
    p.add_argument("--seed", type=int, default=None, help="seed shared by every variant")
    p.add_argument("--device", default=None, help="cpu | cuda | cuda:N")
    p.add_argument("--eval-chunks", type=int, default=0,
                   help="perplexity on a fixed-seed sample of N held-out chunks (default 0: the whole split)")
    p.add_argument("--cost-dataset", default="codeparrot", choices=("codeparrot", "languini"),
                   help="calibration of the PI-cost estimate (codeparrot)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="sets",
                   help="any recipe key for every variant (repeatable)")
    p.add_argument("--json", action="store_true", help="print study.json instead of the Markdown table")
    return p


def run(args: argparse.Namespace) -> int:
    overrides = parse_sets(args.sets)
    for key in ("max_steps", "seed", "device"):
        if getattr(args, key) is not None:
            overrides[key] = getattr(args, key)
    result = run_pi_study(args.config, size=args.size, variants=args.variants, out=args.out,
                          dataset=args.cost_dataset, eval_chunks=args.eval_chunks, **overrides)
    md, js = result.out / "study.md", result.out / "study.json"
    print(js.read_text() if args.json else md.read_text())
    return 0
