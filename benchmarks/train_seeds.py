"""Final mAP of one detector recipe over several seeds: mean +- std, so a recipe difference can be told from noise.

Each seed is a full ``zoo.train`` run (model init, data order and every augmentation follow the seed); its
final weights (``weights/last.safetensors``, the EMA weights the run ends with) are then scored by
pycocotools itself (``zoo.val(..., backend="pycocotools")``, conf 0.001) on the recipe's validation split at
the recipe's image size, independently of the trainer's own in-run validation.

    python benchmarks/train_seeds.py --config configs/leyolo_synthetic.yaml --seeds 0,1,2 --out runs/seeds/tuned
    python benchmarks/train_seeds.py --config configs/leyolo_synthetic_ultralytics.yaml --seeds 0,1,2 \\
        --out runs/seeds/parity --md runs/seeds/parity.md
    python benchmarks/train_seeds.py --runs runs/seeds/tuned/seed0 runs/seeds/tuned/seed1   # score finished runs

Runs already finished under ``--out`` (``seed<N>/weights/last.safetensors`` next to a complete
``results.csv``) are scored again instead of retrained, so a table can be rebuilt or extended seed by seed.
The std is the sample standard deviation (n - 1); with 3 seeds it is itself uncertain by about +-50 %.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import zoo  # noqa: E402
from zoo.core.fileio import write_text_atomic  # noqa: E402


def _parse_sets(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise SystemExit(f"--set expects KEY=VALUE, got {item!r}.")
        key, value = item.split("=", 1)
        out[key] = yaml.safe_load(value)
    return out


def finished(run: Path) -> bool:
    """True when ``run`` holds final weights and its results.csv reached the run's last epoch."""
    args, results = run / "args.yaml", run / "results.csv"
    if not ((run / "weights" / "last.safetensors").is_file() and args.is_file() and results.is_file()):
        return False
    epochs = yaml.safe_load(args.read_text())["epochs"]
    rows = list(csv.DictReader(results.open()))
    return bool(rows) and int(float(rows[-1]["epoch"])) == epochs


def score(run: Path) -> dict[str, Any]:
    """pycocotools mAP of a finished run's last weights, with the run's seed, recipe values and wall time."""
    args = yaml.safe_load((run / "args.yaml").read_text())
    stats = zoo.val(args["model"], args["data"], weights=run / "weights" / "last.safetensors", imgsz=args["imgsz"],
                    conf=args["conf"], iou=args["iou"], max_det=args["max_det"], split=args["val_split"],
                    backend="pycocotools")
    # wall time of the run: args.yaml is written when training starts, results.csv last rewritten at its end
    wall_s = (run / "results.csv").stat().st_mtime - (run / "args.yaml").stat().st_mtime
    return {"run": str(run), "seed": args["seed"], "mAP50-95": float(stats["AP"]), "mAP50": float(stats["AP50"]),
            "wall_s": round(wall_s, 1)}


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"n": len(rows)}
    for key in ("mAP50-95", "mAP50", "wall_s"):
        values = [r[key] for r in rows]
        out[key] = {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0}
    return out


def markdown(title: str, rows: list[dict[str, Any]], summary: dict[str, Any]) -> str:
    lines = [f"**{title}**", "", "| seed | mAP50-95 | mAP50 | wall (s) |", "|---|---|---|---|"]
    lines += [f"| {r['seed']} | {r['mAP50-95']:.4f} | {r['mAP50']:.4f} | {r['wall_s']:.0f} |" for r in rows]
    m, a, w = summary["mAP50-95"], summary["mAP50"], summary["wall_s"]
    lines.append(f"| mean ± std (n={summary['n']}) | {m['mean']:.4f} ± {m['std']:.4f} | "
                 f"{a['mean']:.4f} ± {a['std']:.4f} | {w['mean']:.0f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="leyolo-nano")
    p.add_argument("--config", default=str(REPO / "configs" / "leyolo_synthetic.yaml"))
    p.add_argument("--seeds", default="0,1,2", help="comma-separated seeds, e.g. 0,1,2")
    p.add_argument("--out", default="runs/seeds", help="parent folder of the seed<N> run folders")
    p.add_argument("--set", action="append", default=[], dest="sets", metavar="KEY=VALUE",
                   help="recipe override for every seed (repeatable)")
    p.add_argument("--runs", nargs="+", default=None, metavar="DIR", help="score these finished runs, train nothing")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--title", default=None, help="table title (default: the recipe)")
    p.add_argument("--md", default=None, help="also write the markdown table here")
    p.add_argument("--json", default=None, help="also write rows and summary as JSON here")
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    if a.runs:
        runs = [Path(r) for r in a.runs]
        for run in runs:
            if not finished(run):
                print(f"{run} is not a finished run (no weights/last.safetensors or results.csv short of the last "
                      "epoch); finish it with zoo train --resume or leave it out.", file=sys.stderr)
                return 2
    else:
        try:
            seeds = [int(s) for s in a.seeds.split(",") if s.strip()]
        except ValueError:
            print(f"--seeds expects comma-separated integers, got {a.seeds!r}.", file=sys.stderr)
            return 2
        runs = []
        for seed in seeds:
            run = Path(a.out) / f"seed{seed}"
            if not finished(run):
                t = time.perf_counter()
                zoo.train(a.model, config=a.config, seed=seed, out=str(run), **_parse_sets(a.sets))
                print(f"seed {seed}: trained in {time.perf_counter() - t:.0f} s", file=sys.stderr)
            runs.append(run)
    rows = [score(run) for run in runs]
    summary = summarize(rows)
    title = a.title or f"{a.model} {Path(a.config).name if not a.runs else 'runs'}" + \
        (f" {' '.join(a.sets)}" if a.sets else "")
    text = markdown(title, rows, summary)
    env = (f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor() or platform.machine()}, "
           f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}")
    print(text + "\n" + env)
    if a.md:
        write_text_atomic(Path(a.md), text + "\n" + env + "\n")
    if a.json:
        write_text_atomic(Path(a.json), json.dumps({"rows": rows, "summary": summary, "env": env}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
