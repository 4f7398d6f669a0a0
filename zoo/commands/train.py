"""``zoo train MODEL [--config FILE] [...]`` -> ``zoo.train`` (any registered model whose task has a trainer)."""
from __future__ import annotations

import argparse
import json
import os
from typing import Any

from zoo.core.distributed import cleanup_distributed
from zoo.engine.api import train

EPILOG = """examples:
  zoo train leyolo-nano --config configs/leyolo_synthetic.yaml
  zoo train leyolo-nano --config configs/leyolo_synthetic.yaml --epochs 3 --imgsz 256 --out runs/nano
  zoo train leyolo-small --config configs/leyolo_coco.yaml --data coco.yaml --batch 64 --device 0
  zoo train --resume runs/nano
  zoo train leyolo-nano --config configs/leyolo_synthetic.yaml --set mosaic=0.5 --set lr0=0.002
  torchrun --nproc_per_node 4 -m zoo train leyolo-nano --config configs/leyolo_coco.yaml --data coco.yaml

Every recipe key can be set with --set KEY=VALUE; the common ones have their own flag. A run folder
holds weights/{last,best}.safetensors (load with zoo.create_model(MODEL, checkpoint_path=...)),
weights/last.state.pt (for --resume), results.csv, results.png, steps.jsonl and args.yaml.
"""


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("train", help="train a model from a recipe, or resume a run",
                       description="Train a registered model with a YAML recipe (configs/), on one process or "
                                   "under torchrun (DDP); resume a killed run exactly.",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", nargs="?", default=None, help="registry name, e.g. leyolo-nano (optional with --resume)")
    p.add_argument("--config", default=None, help="YAML recipe, e.g. configs/leyolo_synthetic.yaml")
    p.add_argument("--data", default=None, help="dataset: synthetic | data YAML | COCO JSON | folder")
    p.add_argument("--epochs", type=int, default=None, help="epochs (overrides the recipe)")
    p.add_argument("--max-steps", type=int, default=None, dest="max_steps",
                   help="stop after this many iterations instead of epochs")
    p.add_argument("--batch", type=int, default=None, help="global batch size (split over torchrun processes)")
    p.add_argument("--imgsz", type=int, default=None, help="image size (detection)")
    p.add_argument("--device", default=None, help="cpu | cuda | cuda:N | N (default: CUDA when available)")
    p.add_argument("--workers", type=int, default=None, help="data-loading worker processes per process")
    p.add_argument("--seed", type=int, default=None, help="random seed")
    p.add_argument("--out", default=None, help="run folder (default runs/train/MODEL[-N])")
    p.add_argument("--resume", default=None, metavar="DIR", help="continue the run in DIR from its last state")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="sets",
                   help="any recipe key (repeatable); VALUE is read as YAML (3, 0.5, true, text)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    return p


def parse_sets(items: list[str]) -> dict[str, Any]:
    """``["lr0=0.01", "amp=false"]`` -> ``{"lr0": 0.01, "amp": False}`` (values parsed as YAML scalars)."""
    import yaml

    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set expects KEY=VALUE, got {item!r}.")
        out[key.strip()] = yaml.safe_load(value) if value.strip() else ""
    return out


def recipe_overrides(args: argparse.Namespace, flags: tuple[str, ...]) -> dict[str, Any]:
    """The ``--set`` pairs plus every flag in ``flags`` that was given; a key given both ways is refused."""
    overrides = parse_sets(args.sets)
    for key in flags:
        value = getattr(args, key)
        if value is not None:
            if key in overrides:
                raise ValueError(f"--{key.replace('_', '-')} and --set {key}=... both given; keep one.")
            overrides[key] = value
    return overrides


def report_run(result: Any, as_json: bool) -> None:
    """Print a finished run (``zoo train`` and ``zoo distill``): paths, iterations, final metrics."""
    summary = {"run_dir": str(result.run_dir), "last": str(result.last),
               "best": str(result.best) if result.best else None, "iterations": result.iterations,
               "best_fitness": getattr(result, "best_fitness", None), "metrics": result.metrics}
    if as_json:
        print(json.dumps(summary, indent=2))
        return
    for key, value in summary.items():
        if key == "metrics":
            for name, v in value.items():
                print(f"{name:<18} {v:.4f}")
        else:
            print(f"{key:<18} {value}")


def run(args: argparse.Namespace) -> int:
    overrides = recipe_overrides(args, ("data", "epochs", "max_steps", "batch", "imgsz", "device", "workers", "seed",
                                        "out"))
    try:
        result = train(args.model, config=args.config, resume=args.resume, **overrides)
    finally:
        cleanup_distributed()  # under torchrun: leave the process group cleanly, also after an error
    if os.environ.get("RANK", "0") == "0":  # only rank 0 reports
        report_run(result, args.json)
    return 0
