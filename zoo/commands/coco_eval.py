"""``zoo coco-eval GT.json DETECTIONS.json`` -> ``zoo.eval.coco.evaluate``: COCO stats of any tool's results."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from zoo.commands.options import EVALUATORS, deprecated_alias
from zoo.core.fileio import check_output_path, write_json_atomic
from zoo.eval.coco import evaluate_full

EPILOG = """examples:
  zoo coco-eval instances_val2017.json detections.json
  zoo coco-eval gt.json dets.json --evaluator pycocotools --json
  zoo coco-eval gt.json dets.json --out stats.json --per-class
"""


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("coco-eval", help="COCO box mAP of a results file", epilog=EPILOG,
                       description="The 12 COCO box stats (identical to pycocotools) of a COCO results JSON.",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("ground_truth", help="COCO instances JSON")
    p.add_argument("detections", help="COCO results JSON: [{image_id, category_id, bbox, score}, ...]")
    p.add_argument("--evaluator", default=None, choices=EVALUATORS,
                   help="evaluator implementation (default: effzoo, exact and fastest)")
    deprecated_alias(p, "--backend", "--evaluator", "evaluator", choices=EVALUATORS)
    p.add_argument("--max-dets", type=int, nargs=3, default=(1, 10, 100), metavar="N",
                   help="the three detection caps (default 1 10 100)")
    p.add_argument("--per-class", action="store_true", help="also print AP per category")
    p.add_argument("--json", action="store_true", help="print the stats as JSON")
    p.add_argument("--out", default=None, help="also write stats (and per-class AP) to this JSON file")
    return p


def run(args: argparse.Namespace) -> int:
    if args.out:
        check_output_path(args.out, what="--out")
        for given in (args.ground_truth, args.detections):  # outputs never overwrite inputs
            if Path(args.out).resolve() == Path(given).resolve():
                raise ValueError(f"--out {args.out} is an input file; write the stats to another file.")
    result = evaluate_full(args.ground_truth, args.detections, backend=args.evaluator, max_dets=args.max_dets)
    if args.out:
        write_json_atomic(args.out, result.to_dict())
    if args.json:
        print(json.dumps(result.to_dict() if args.per_class else result.stats, indent=2))
    else:
        if not args.per_class:
            result.per_class = {}
        print(result.table())
    return 0
