"""``zoo list [PATTERN] [--details]`` -> ``zoo.list_models``."""
from __future__ import annotations

import argparse
import json
import sys

from zoo.core.registry import get_card, list_models
from zoo.tasks import get_task


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("list", help="list registered models",
                       description="List registered models (fnmatch PATTERN, e.g. 'leyolo-*').",
                       epilog="examples:\n  zoo list\n  zoo list 'pi-gpt2-tiny-*'\n  zoo list 'leyolo-*' --details",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("pattern", nargs="?", default=None, help="fnmatch pattern (quote it in the shell)")
    p.add_argument("--details", action="store_true",
                   help="table with params, input size, paper GFLOPs and paper accuracy")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    return p


def details_table(names: list[str]) -> str:
    """Markdown table of cards: name, params, input size(s), paper GFLOPs, paper accuracy, source."""
    rows = ["| model | params | input | paper GFLOPs | paper accuracy | source |",
            "|---|---:|---|---|---|---|"]
    for name in names:
        card = get_card(name)
        gflops = ", ".join(f"{v:g} @{k.split('@')[1]}" for k, v in card.paper.items() if k.startswith("gflops@"))
        acc = ", ".join(f"{k.split('@')[0]} {v:g}" + (f" @{k.split('@')[1]}" if "@" in k else "")
                        for k, v in card.paper.items() if not k.startswith("gflops@"))
        sizes = "/".join(str(s) for s in card.input_sizes)
        unit = get_task(card.task).size_unit
        rows.append(f"| {name} | {card.n_params:,} | {sizes} {unit} | {gflops or '-'} | {acc or '-'} | "
                    f"{card.source or '-'} |")
    return "\n".join(rows)


def run(args: argparse.Namespace) -> int:
    names = list_models(args.pattern)
    if args.pattern and not names:
        print(f"zoo list: no model matches {args.pattern!r}; try zoo list", file=sys.stderr)  # stdout: results only
        return 1
    if args.json:
        print(json.dumps([get_card(n).to_dict() if args.details else n for n in names], indent=2))
    elif args.details:
        print(details_table(names))
    else:
        print("\n".join(names))
    return 0
