"""Distilled vs scratch vs teacher on the CPU recipe (stdlib bytes, tiny, 300 steps each), from one command.

    python benchmarks/distill_tiny.py --out runs/distill-tiny      # 9 runs, 3 at a time
    python benchmarks/distill_tiny.py --out runs/distill-tiny --steps 100 --students sm-scfuffn --kd 0.9,1.0,0.0

1. trains the teacher (``pi-gpt2-tiny-sm-ln-g``) and, beside it, each student (default ``ereg-sm-t-scfuffn``
   and ``sm-scfuffn``) from scratch with ``configs/pi_cpu_tiny.yaml``;
2. distils each student from the teacher with ``configs/pi_distill_tiny.yaml`` once per ``--kd`` setting
   (alpha, tau, attention-entropy weight, optional ``student_init``); data, batches, schedule, steps and
   seed are those of the scratch run, only the loss (and, with ``teacher``, the starting weights) differ;
3. prints and writes ``distill_table.md`` / ``distill_table.json``: validation perplexity on the same
   held-out chunks, and the share of the scratch-to-teacher gap that distillation closes,
   (PPL_scratch - PPL_distilled) / (PPL_scratch - PPL_teacher).

Runs that already finished in ``--out`` are reused (their results.csv is read) and interrupted ones resume,
so the command can be repeated to extend a table.
"""
from __future__ import annotations

import argparse
import csv
import json
import multiprocessing
import os
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch

import zoo

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


def _run(kind: str, run: Path, steps: int, fn, threads: int, **kwargs) -> dict[str, float]:
    torch.set_num_threads(threads)
    done = _final_metrics(run, steps)
    if done is not None:
        print(f"[reuse] {kind}: {run} val/ppl {done['val/ppl']:.3f}", file=sys.stderr)
        return done
    if (run / "weights" / "last.state.pt").is_file():
        kwargs = {"resume": str(run)}  # an interrupted run continues exactly
    else:
        kwargs["out"] = str(run)
    t0 = time.perf_counter()
    result = getattr(zoo, fn)(**kwargs)
    print(f"[done] {kind}: {run} val/ppl {result.metrics['val/ppl']:.3f} in {time.perf_counter() - t0:.0f} s",
          file=sys.stderr)
    return {k: v for k, v in result.metrics.items() if k.startswith("val/")}


def _phase(jobs: dict[str, tuple], parallel: int) -> dict[str, dict[str, float]]:
    """Run independent trainings, ``parallel`` processes at a time (spawned: each owns its torch state)."""
    if parallel <= 1:
        return {key: _run(*args[:5], **args[5]) for key, args in jobs.items()}
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=parallel, mp_context=ctx) as pool:
        futures = {key: pool.submit(_run, *args[:5], **args[5]) for key, args in jobs.items()}
        return {key: f.result() for key, f in futures.items()}


def _tag(kd: dict) -> str:
    init = "-init" if kd["student_init"] else ""
    return f"a{kd['alpha']:g}-t{kd['tau']:g}-e{kd['attn_entropy_weight']:g}{init}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("runs/distill-tiny"))
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--teacher", default="pi-gpt2-tiny-sm-ln-g")
    p.add_argument("--students", nargs="+", default=["ereg-sm-t-scfuffn", "sm-scfuffn"])
    p.add_argument("--kd", nargs="+", default=["0.5,2.0,0.0", "0.9,1.0,0.0", "0.9,1.0,0.0,teacher", "0.5,1.0,0.0,teacher",
                                               "0.9,1.0,0.5,teacher"],
                   metavar="ALPHA,TAU,ATTN[,INIT]",
                   help="distillation settings, one distilled run per student each: alpha, tau, "
                        "attn_entropy_weight and optionally student_init (teacher = start from the teacher's "
                        "tensors that fit); default: the recipe's 0.5,2.0,0.0 and four more settings")

    p.add_argument("--threads", type=int, default=1, help="torch threads per training process")
    p.add_argument("--parallel", type=int, default=3, help="independent trainings run at once (phase 1: teacher + "
                                                          "scratch students; phase 2: distilled students)")
    p.add_argument("--cache", default="", help="token cache folder ('' = the default cache)")
    args = p.parse_args(argv)
    common = dict(max_steps=args.steps, cache=args.cache or None, device="cpu")
    out, t = args.out, args.threads
    settings = []
    for item in args.kd:
        parts = item.split(",")
        try:
            alpha, tau, attn = (float(x) for x in parts[:3])
        except ValueError:
            p.error(f"--kd expects ALPHA,TAU,ATTN[,INIT] (e.g. 0.9,1.0,0.0,teacher), got {item!r}")
        settings.append(dict(alpha=alpha, tau=tau, attn_entropy_weight=attn,
                             student_init=parts[3] if len(parts) > 3 else ""))
    # phase 1: the teacher and the scratch students need nothing from each other
    first = {"teacher": ("teacher", out / "teacher", args.steps, "train", t,
                         dict(model=args.teacher, config=TRAIN_RECIPE, **common))}
    for v in args.students:
        first[f"{v}-scratch"] = (f"{v} scratch", out / f"{v}-scratch", args.steps, "train", t,
                                 dict(model=f"pi-gpt2-tiny-{v}", config=TRAIN_RECIPE, **common))
    results = _phase(first, args.parallel)
    teacher_weights = str(out / "teacher" / "weights" / "best.safetensors")
    second = {}
    for kd in settings:
        tag = _tag(kd)
        for v in args.students:
            second[(v, tag)] = (f"{v} distilled {tag}", out / f"{v}-distilled-{tag}", args.steps, "distill", t,
                                dict(student=f"pi-gpt2-tiny-{v}", teacher=args.teacher,
                                     teacher_weights=teacher_weights, config=DISTILL_RECIPE, **common, **kd))
    distilled_runs = _phase(second, args.parallel)
    teacher = results["teacher"]
    rows = []
    for (variant, tag), distilled in distilled_runs.items():
        kd = settings[[_tag(k) for k in settings].index(tag)]
        scratch = results[f"{variant}-scratch"]
        gap = scratch["val/ppl"] - teacher["val/ppl"]
        closed = (scratch["val/ppl"] - distilled["val/ppl"]) / gap if gap > 0 else float("nan")
        rows.append({"student": f"pi-gpt2-tiny-{variant}", "teacher": args.teacher, **kd,
                     "scratch_ppl": scratch["val/ppl"], "distilled_ppl": distilled["val/ppl"],
                     "teacher_ppl": teacher["val/ppl"], "gap_closed": closed, "val_tokens": scratch["val/tokens"]})
    header = (f"CPU recipe: stdlib bytes, T=64, batch 32, {args.steps} steps each, seed 0, same held-out chunks; "
              f"teacher {args.teacher}; torch {torch.__version__}, {platform.processor() or platform.machine()}, "
              f"{t} thread(s) per run")
    lines = [header, "", "| student | alpha | tau | attn-entropy w | init | scratch PPL | distilled PPL | teacher PPL | "
             "gap closed |", "|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: r["student"]):
        lines.append(f"| `{r['student']}` | {r['alpha']:g} | {r['tau']:g} | {r['attn_entropy_weight']:g} | "
                     f"{r['student_init'] or 'random'} | "
                     f"{r['scratch_ppl']:.3f} | {r['distilled_ppl']:.3f} | {r['teacher_ppl']:.3f} | "
                     f"{100 * r['gap_closed']:.0f} % |")
    table = "\n".join(lines)
    out.mkdir(parents=True, exist_ok=True)
    (out / "distill_table.md").write_text(table + "\n")
    (out / "distill_table.json").write_text(json.dumps({"settings": header, "rows": rows}, indent=2) + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    sys.exit(main())
