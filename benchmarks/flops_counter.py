"""Wall time of ``zoo.count_flops`` vs fvcore's ``FlopCountAnalysis(model, x).total()``.

Both trace the model once with torch.jit; ours also fuses a deep copy, evaluates three conventions and the
nonlinearity census from that single trace. Target: ratio (ours / fvcore) <= 1.0. Runs are interleaved
(ABBA order) so that load drifting on a shared machine hits both sides alike; medians of ``--repeats``.

    python benchmarks/flops_counter.py                       # LeYOLO-Medium @640, median of 5
    python benchmarks/flops_counter.py --model leyolo-nano --imgsz 320 --repeats 9 --out runs/flops_bench.md
"""
from __future__ import annotations

import argparse
import logging
import platform
import statistics
import sys
import time
from collections.abc import Callable

import torch

import zoo
from zoo.fileio import write_text_atomic


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="leyolo-medium")
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--out", default=None, help="also write the markdown table to this file")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")
    if args.threads:
        torch.set_num_threads(args.threads)

    from fvcore.nn import FlopCountAnalysis

    logging.getLogger("fvcore").setLevel(logging.ERROR)  # its unsupported-op warnings would flood stderr
    model = zoo.create_model(args.model).eval()
    x = torch.zeros(1, 3, args.imgsz, args.imgsz)
    cases: dict[str, Callable[[], object]] = {
        "zoo.count_flops (paper, fused)": lambda: zoo.count_flops(model, x),
        "zoo.count_flops (fvcore, unfused)": lambda: zoo.count_flops(model, x, convention="fvcore", fused=False),
        "fvcore FlopCountAnalysis().total()": lambda: FlopCountAnalysis(model, x).total(),
    }
    for fn in cases.values():  # warm-up: first-call costs (lazy imports, allocator) are not what we compare
        fn()
    times: dict[str, list[float]] = {name: [] for name in cases}
    names = list(cases)
    for i in range(args.repeats):
        order = names if i % 2 == 0 else names[::-1]
        for name in order:
            times[name].append(_timed(cases[name]))
            print(f"  run {i + 1}/{args.repeats} {name}: {times[name][-1]:.3f} s", file=sys.stderr)

    ours = zoo.count_flops(model, x)
    ours_fv = zoo.count_flops(model, x, convention="fvcore", fused=False)
    theirs = FlopCountAnalysis(model, x).total()
    base = statistics.median(times[names[-1]])
    rows = ["| counter | median s | min s | max s | ratio vs fvcore |", "|:--|--:|--:|--:|--:|"]
    for name in names:
        t = times[name]
        rows.append(f"| {name} | {statistics.median(t):.3f} | {min(t):.3f} | {max(t):.3f} | "
                    f"{statistics.median(t) / base:.2f} |")
    header = (f"{args.model} @{args.imgsz}, batch 1, fp32, {platform.processor() or platform.machine()} CPU, "
              f"{torch.get_num_threads()} threads, torch {torch.__version__}, median of {args.repeats} "
              "(interleaved)")
    counts = (f"counts: ours paper {ours.total:,} FLOPs ({ours.gflops:.4f} G); ours fvcore-convention "
              f"{ours_fv.total:,}; fvcore {int(theirs):,} (fvcore's trace prunes layers whose output is unused)")
    text = "\n".join([header, "", *rows, "", counts])
    print(text)
    if args.out:
        write_text_atomic(args.out, text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
