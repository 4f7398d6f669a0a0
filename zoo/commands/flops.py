"""``zoo flops NAME`` -> ``zoo.count_flops`` (FLOPs/MACs, per-operator and per-module, plus the census)."""
from __future__ import annotations

import argparse
import json

import torch

from zoo.commands.options import size_for
from zoo.core.factory import create_model
from zoo.core.registry import get_card
from zoo.flops import count_flops
from zoo.tasks import get_task

EPILOG = """examples:
  zoo flops leyolo-nano --imgsz 320
  zoo flops leyolo-medium --unfused --by-module --depth 2
  zoo flops leyolo-small --imgsz 480 --convention macs --json
  zoo flops pi-gpt2-tiny-sm-ln-g --seq-len 64

conventions: paper = 2 x MACs + 8 FLOPs per BatchNorm element + upsample outputs, on the fused model
(what the LeYOLO paper / ultralytics report); macs = conv/linear/matmul multiply-accumulates only;
fvcore = fvcore's FlopCountAnalysis rules. The census counts the elements each nonlinearity touches.
"""


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("flops", help="count FLOPs/MACs and nonlinearities of a model",
                       description="Count a registered model's FLOPs (or MACs) for one forward pass, by operator "
                                   "and by module, and its nonlinearity census.",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", help="registry name, e.g. leyolo-nano (see zoo list)")
    size = p.add_mutually_exclusive_group()
    size.add_argument("--imgsz", type=int, help="detector input side in pixels (default: the card's input size)")
    size.add_argument("--seq-len", type=int, help="language-model sequence length (default: the card's input size)")
    p.add_argument("--convention", choices=("paper", "macs", "fvcore"), default="paper",
                   help="counting rule (default: paper)")
    fuse = p.add_mutually_exclusive_group()
    fuse.add_argument("--fused", dest="fused", action="store_true", default=True,
                      help="fuse a copy first, as ultralytics does before reporting (default)")
    fuse.add_argument("--unfused", dest="fused", action="store_false", help="count the model as built")
    p.add_argument("--by-module", action="store_true", help="per-module table (with --json: a 'modules' list)")
    p.add_argument("--depth", type=int, default=3, help="module depth shown by --by-module (default: 3)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    return p


def _model_and_inputs(args: argparse.Namespace) -> tuple[torch.nn.Module, torch.Tensor, str]:
    card = get_card(args.name)
    task = get_task(card.task)
    size = size_for(card, imgsz=args.imgsz, seq_len=args.seq_len)
    size = card.input_size if size is None else size
    model = create_model(args.name, **task.size_kwargs(card, size))
    return model, task.example_input(size, 1), f"{task.size_arg}={size}"


def run(args: argparse.Namespace) -> int:
    model, inputs, size = _model_and_inputs(args)
    result = count_flops(model, inputs, convention=args.convention, fused=args.fused)
    if args.json:
        out = {"model": args.name, "input": size, **result.to_dict()}
        if not args.by_module:
            out.pop("modules")
            out["nonlinear"].pop("by_module")
        print(json.dumps(out, indent=2))
        return 0
    census = result.nonlinear
    lines = [
        f"{args.name} {size} input {result.input_shapes[0]}, convention {result.convention}, "
        f"{'fused' if result.fused else 'unfused'}",
        f"total   {result.total:,} {result.unit} (convention {result.convention})",
        f"FLOPs   {result.flops:,} ({result.gflops:.4f} GFLOPs, paper rules: 2 x MACs + norms + upsample)",
        f"MACs    {result.macs:,} ({result.gmacs:.4f} GMACs, conv/linear/matmul)",
        "by operator: " + (", ".join(f"{op} {n:,}" for op, n in result.by_operator.items()) or "-"),
        "nonlinear elements: " + (", ".join(f"{k} {n:,}" for k, n in census.by_kind.items()) or "-")
        + f" (total {census.total:,})",
        "unsupported: " + (", ".join(f"{op} x{n}" for op, n in result.unsupported.items()) or "none"),
    ]
    print("\n".join(lines))
    if args.by_module:
        print()
        print(result.table(max_depth=args.depth))
    return 0
