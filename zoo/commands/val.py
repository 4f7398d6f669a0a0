"""``zoo val MODEL --weights W [--data ...]`` -> ``zoo.val``: COCO stats table + JSON."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from zoo.commands.options import EVALUATORS, add_nms_flags, add_runtime_flag, deprecated_alias
from zoo.core.fileio import check_output_path, write_json_atomic
from zoo.runtime.exported import open_detector, resolve_runtime
from zoo.tasks.detection.val import build_for_data, val_full

EPILOG = """examples:
  zoo val leyolo-nano                                  # untrained, on the synthetic shapes set
  zoo val leyolo-nano --weights runs/train/best.safetensors --data synthetic
  zoo val leyolo-nano --weights LeYOLONano.pt --data coco.yaml --imgsz 640 --batch 16
  zoo val leyolo-nano --weights LeYOLONano.pt --data coco/val2017 --evaluator pycocotools
  zoo val leyolo-nano --weights runs/export/leyolo-nano-edge.onnx --data coco.yaml --runtime onnx
"""


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("val", help="COCO mAP of a detector on a dataset", epilog=EPILOG,
                       description="Run a detector over a labelled dataset and print the 12 COCO stats.",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="registry name, e.g. leyolo-nano")
    p.add_argument("--weights", default=None, help="checkpoint, or an exported .onnx file; without it an untrained "
                                                   "model sized to the data")
    add_runtime_flag(p)
    p.add_argument("--data", default=None,
                   help="'synthetic' (default), an ultralytics data YAML, a COCO JSON, or a dataset folder")
    p.add_argument("--split", default="val", help="dataset split (default val)")
    p.add_argument("--imgsz", type=int, default=None,
                   help="letterbox size (default: the model's input size; a trained checkpoint records its size)")
    p.add_argument("--batch", type=int, default=8, help="images per forward pass (default 8)")
    add_nms_flags(p, conf=0.001)
    p.add_argument("--evaluator", default=None, choices=EVALUATORS,
                   help="COCO evaluator implementation (default effzoo: exact and fastest)")
    deprecated_alias(p, "--backend", "--evaluator", "evaluator", choices=EVALUATORS)
    p.add_argument("--out", type=Path, default=Path("runs/val/stats.json"),
                   help="where to write the stats JSON (default runs/val/stats.json)")
    p.add_argument("--json", action="store_true", help="print the stats as JSON")
    return p


def run(args: argparse.Namespace) -> int:
    check_output_path(args.out, what="--out")  # before the whole validation, not after
    for given in (args.weights, args.data):  # outputs never overwrite inputs
        if given and Path(given).exists() and args.out.resolve() == Path(given).resolve():
            raise ValueError(f"--out {args.out} is an input file; write the stats to another file.")
    runtime = resolve_runtime(args.runtime, args.weights)
    if runtime != "torch":  # an exported .onnx / .xml file
        if args.weights is None:
            raise ValueError(f"--runtime {runtime} needs the exported file as --weights (see zoo export).")
        model = open_detector(args.weights, args.model)
    else:
        model = build_for_data(args.model, args.weights, args.data, args.split)
        if args.weights is not None and hasattr(model, "fuse"):
            model = model.fuse()
    result = val_full(model, args.data, imgsz=args.imgsz, batch=args.batch, conf=args.conf, iou=args.iou,
                      max_det=args.max_det, backend=args.evaluator, split=args.split, progress=True)
    report = {"model": args.model, "weights": args.weights, "data": args.data or "synthetic", **result.to_dict()}
    write_json_atomic(args.out, report)
    print(json.dumps(result.stats, indent=2) if args.json else result.table())
    if not args.json:
        print(f"saved {args.out}")
    return 0
