"""Distilled vs scratch vs teacher on the CPU recipe (stdlib bytes, tiny, 300 steps each), from one command.

    python benchmarks/distill_tiny.py --out runs/distill-tiny            # ~15-40 min on 2 busy cores
    python benchmarks/distill_tiny.py --out runs/distill-tiny --steps 100 --students sm-scfuffn

1. trains the teacher (``pi-gpt2-tiny-sm-ln-g``) with ``configs/pi_cpu_tiny.yaml``;
2. for each student (default ``ereg-sm-t-scfuffn`` and ``sm-scfuffn``) trains it from scratch with the same
   recipe, and distils it from the teacher with ``configs/pi_distill_tiny.yaml`` (same data, batches,
   schedule, steps and seed; only the loss differs);
3. prints and writes ``distill_table.md`` / ``distill_table.json``: validation perplexity on the same
   held-out chunks, and the share of the scratch-to-teacher gap that distillation closes,
   (PPL_scratch - PPL_distilled) / (PPL_scratch - PPL_teacher).

Runs that already finished in ``--out`` are reused (their results.csv is read), so an interrupted
benchmark continues where it stopped.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

import zoo
from zoo.tasks.language.distill_config import DistillTrainConfig

REPO = Path(__file__).resolve().parents[1]
TRAIN_RECIPE = REPO / "configs" / "pi_cpu_tiny.yaml"
DISTILL_RECIPE = REPO / "configs" / "pi_distill_tiny.yaml"


def _final_metrics(run: Path, steps: int) -> dict[str, float] | None:
    """The last validation row of a finished run (None when the run is absent or shorter than ``steps``)."""
    table = run / "results.csv"
    if not table.is_file():
        return None
    rows = list(csv.DictReader(table.open()))
    if not rows or int(rows[-1]["iteration"]) < steps:
        return None
    return {k: float(v) for k, v in rows[-1].items() if k.startswith("val/") and v not in ("", None)}


def _run(kind: str, run: Path, steps: int, fn, **kwargs) -> dict[str, float]:
    done = _final_metrics(run, steps)
    if done is not None:
        print(f"[reuse] {kind}: {run} val/ppl {done['val/ppl']:.3f}", file=sys.stderr)
        return done
    if (run / "weights" / "last.state.pt").is_file():
        kwargs = {"resume": str(run)}  # an interrupted run continues exactly
    else:
        kwargs["out"] = str(run)
    t0 = time.perf_counter()
    result = fn(**kwargs)
    print(f"[done] {kind}: {run} val/ppl {result.metrics['val/ppl']:.3f} in {time.perf_counter() - t0:.0f} s",
          file=sys.stderr)
    return {k: v for k, v in result.metrics.items() if k.startswith("val/")}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("runs/distill-tiny"))
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--teacher", default="pi-gpt2-tiny-sm-ln-g")
    p.add_argument("--students", nargs="+", default=["ereg-sm-t-scfuffn", "sm-scfuffn"])
    p.add_argument("--alpha", type=float, default=None, help="default: the recipe's")
    p.add_argument("--tau", type=float, default=None, help="default: the recipe's")
    p.add_argument("--attn-entropy-weight", type=float, default=None, help="default: the recipe's")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--cache", default="", help="token cache folder ('' = the default cache)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    common = dict(max_steps=args.steps, cache=args.cache or None, device="cpu")
    out = args.out
    teacher = _run("teacher", out / "teacher", args.steps,
                   lambda **kw: zoo.train(args.teacher, config=TRAIN_RECIPE, **common, **kw))
    teacher_weights = out / "teacher" / "weights" / "best.safetensors"
    kd = dict(alpha=args.alpha, tau=args.tau, attn_entropy_weight=args.attn_entropy_weight)
    rows = []
    for variant in args.students:
        student = f"pi-gpt2-tiny-{variant}"
        scratch = _run(f"{variant} scratch", out / f"{variant}-scratch", args.steps,
                       lambda **kw: zoo.train(student, config=TRAIN_RECIPE, **common, **kw))
        distilled = _run(f"{variant} distilled", out / f"{variant}-distilled", args.steps,
                         lambda **kw: zoo.distill(student, teacher=args.teacher, teacher_weights=teacher_weights,
                                                  config=DISTILL_RECIPE, **common, **kd, **kw))
        gap = scratch["val/ppl"] - teacher["val/ppl"]
        closed = (scratch["val/ppl"] - distilled["val/ppl"]) / gap if gap > 0 else float("nan")
        rows.append({"student": student, "teacher": args.teacher, "scratch_ppl": scratch["val/ppl"],
                     "distilled_ppl": distilled["val/ppl"], "teacher_ppl": teacher["val/ppl"],
                     "gap_closed": closed, "val_tokens": scratch["val/tokens"]})
    recipe = DistillTrainConfig(teacher=args.teacher, teacher_weights="x")
    used = {k: (v if v is not None else getattr(recipe, k)) for k, v in kd.items()}
    header = (f"CPU recipe: stdlib bytes, T=64, batch 32, {args.steps} steps each, seed 0; teacher {args.teacher}; "
              f"alpha={used['alpha']}, tau={used['tau']}, attn_entropy_weight={used['attn_entropy_weight']}; "
              f"torch {torch.__version__}, {platform.processor() or platform.machine()}, {args.threads} threads")
    lines = [header, "", "| student | scratch PPL | distilled PPL | teacher PPL | gap closed |", "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| `{r['student']}` | {r['scratch_ppl']:.3f} | {r['distilled_ppl']:.3f} | {r['teacher_ppl']:.3f} "
                     f"| {100 * r['gap_closed']:.0f} % |")
    table = "\n".join(lines)
    out.mkdir(parents=True, exist_ok=True)
    (out / "distill_table.md").write_text(table + "\n")
    (out / "distill_table.json").write_text(json.dumps({"settings": header, "rows": rows, **used}, indent=2) + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    sys.exit(main())
