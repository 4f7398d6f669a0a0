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
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable

import torch

from zoo.core.fileio import write_text_atomic


def _timed(fn: Callable[[], object]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process); CPU time is the steadier one on a shared machine."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


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

    import zoo.flops  # noqa: F401  (first: it imports fvcore with fvcore's import-time warning silenced)

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
    wall: dict[str, list[float]] = {name: [] for name in cases}
    cpu: dict[str, list[float]] = {name: [] for name in cases}
    names = list(cases)
    for i in range(args.repeats):
        order = names if i % 2 == 0 else names[::-1]
        for name in order:
            w, c = _timed(cases[name])
            wall[name].append(w)
            cpu[name].append(c)
            print(f"  run {i + 1}/{args.repeats} {name}: {w:.3f} s wall, {c:.3f} s CPU", file=sys.stderr)

    ours = zoo.count_flops(model, x)
    ours_fv = zoo.count_flops(model, x, convention="fvcore", fused=False)
    theirs = FlopCountAnalysis(model, x).total()
    base_wall, base_cpu = statistics.median(wall[names[-1]]), statistics.median(cpu[names[-1]])
    rows = ["| counter | wall median s | wall min-max s | wall ratio vs fvcore | CPU median s | CPU ratio |",
            "|:--|--:|--:|--:|--:|--:|"]
    for name in names:
        w, c = wall[name], cpu[name]
        rows.append(f"| {name} | {statistics.median(w):.3f} | {min(w):.3f}-{max(w):.3f} | "
                    f"{statistics.median(w) / base_wall:.2f} | {statistics.median(c):.3f} | "
                    f"{statistics.median(c) / base_cpu:.2f} |")
    header = (f"{args.model} @{args.imgsz}, batch 1, fp32, {platform.machine()} CPU ({os.cpu_count()} cores, "
              f"load avg {os.getloadavg()[0]:.1f}), {torch.get_num_threads()} threads, torch {torch.__version__}, "
              f"median of {args.repeats} (interleaved)")
    counts = (f"counts: ours paper {ours.total:,} FLOPs ({ours.gflops:.4f} G); ours fvcore-convention "
              f"{ours_fv.total:,}; fvcore {int(theirs):,} (fvcore's trace prunes layers whose output is unused)")
    text = "\n".join([header, "", *rows, "", counts])
    print(text)
    if args.out:
        write_text_atomic(args.out, text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
