"""``zoo info NAME`` -> ``zoo.model_info``."""
from __future__ import annotations

import argparse
import json

from zoo.core.errors import ZooError
from zoo.core.factory import pretrained_path, weights_dir
from zoo.core.registry import model_info


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("info", help="show a model's card",
                       description="Show a model's card: family, input size, published numbers, params.",
                       epilog="examples:\n  zoo info leyolo-nano\n  zoo info leyolo-small --json",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", help="registry name, e.g. leyolo-nano")
    p.add_argument("--json", action="store_true", help="print the card as JSON")
    return p


def run(args: argparse.Namespace) -> int:
    card = model_info(args.name)
    info = card.to_dict()
    try:
        info["local_weights"] = str(pretrained_path(card.name))
    except ZooError:
        info["local_weights"] = None
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    width = max(len(k) for k in info)
    for key, value in info.items():
        if key == "paper":
            value = ", ".join(f"{k}={v:g}" for k, v in value.items()) or "-"
        elif key == "n_params":
            value = f"{value:,}"
        elif key == "local_weights" and value is None and card.weights_file:
            value = f"not found (put {card.weights_file} in {weights_dir()})"
        print(f"{key:<{width}}  {value}")
    return 0
