"""Time COCO box evaluation: effzoo's engine vs plain pycocotools vs plain faster-coco-eval.

Each contender starts from the same in-memory COCO ground-truth dict and results list (what a
validator holds) and ends with the 12 stats; inputs are deep-copied outside the timer because
``loadRes`` mutates them. Median of ``--repeats`` runs, ratios against faster-coco-eval, and a check
that every backend's stats equal pycocotools'. Writes a JSON table with ``--out``.

    python benchmarks/coco_eval.py                      # 5,000 images, 300k detections
    python benchmarks/coco_eval.py --images 1000 --repeats 3 --skip-pycocotools
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import io
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from zoo.eval.coco import evaluate  # noqa: E402
from zoo.eval.synthetic_results import make_detections, make_ground_truth  # noqa: E402


def plain_pycocotools(gt: dict, dets: list) -> list[float]:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = gt
        coco_gt.createIndex()
        ev = COCOeval(coco_gt, coco_gt.loadRes(dets), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev.stats.tolist()


def plain_faster_coco_eval(gt: dict, dets: list) -> list[float]:
    from faster_coco_eval import COCO, COCOeval_faster

    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO(gt)
        ev = COCOeval_faster(coco_gt, coco_gt.loadRes(dets), "bbox", print_function=lambda *a, **k: None)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return [float(v) for v in ev.stats[:12]]


def ours(gt: dict, dets: list) -> list[float]:
    return list(evaluate(gt, dets, backend="effzoo").values())


def time_it(fn, gt: dict, dets: list, repeats: int) -> tuple[float, list[float], list[float]]:
    times, stats = [], None
    for _ in range(repeats):
        g, d = copy.deepcopy(gt), copy.deepcopy(dets)
        start = time.perf_counter()
        stats = fn(g, d)
        times.append(time.perf_counter() - start)
    return statistics.median(times), times, stats


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--dets-per-image", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-pycocotools", action="store_true", help="pycocotools takes minutes at full size")
    parser.add_argument("--out", type=Path, default=None, help="write the table as JSON")
    args = parser.parse_args()

    gt = make_ground_truth(args.images, seed=0)
    dets = make_detections(gt, detections_per_image=args.dets_per_image, seed=1)
    print(f"{args.images} images, {len(gt['annotations'])} ground-truth boxes, {len(dets)} detections, "
          f"median of {args.repeats}; python {platform.python_version()}, numpy {np.__version__}", flush=True)
    contenders = [("effzoo", ours)]
    try:
        import faster_coco_eval

        contenders.append((f"faster-coco-eval {faster_coco_eval.__version__}", plain_faster_coco_eval))
    except ImportError:
        print("note: faster-coco-eval not installed; skipped")
    if not args.skip_pycocotools:
        contenders.append(("pycocotools", plain_pycocotools))
    rows = {}
    for name, fn in contenders:
        median, times, stats = time_it(fn, gt, dets, args.repeats)
        rows[name] = {"median_s": median, "times_s": times, "stats": stats}
        print(f"  {name:<24} median {median:7.2f} s  (runs: {', '.join(f'{t:.2f}' for t in times)})", flush=True)
    base = next((n for n in rows if n.startswith("faster-coco-eval")), None)
    if base:
        for name, row in rows.items():
            row["ratio_vs_faster_coco_eval"] = row["median_s"] / rows[base]["median_s"]
            print(f"  {name:<24} {row['ratio_vs_faster_coco_eval']:.2f} x faster-coco-eval's time")
    if "pycocotools" in rows:
        ref = rows["pycocotools"]["stats"]
        for name, row in rows.items():
            row["identical_to_pycocotools"] = row["stats"] == ref
            diff = max(abs(a - b) for a, b in zip(row["stats"], ref))
            print(f"  {name:<24} stats identical to pycocotools: {row['stats'] == ref} (max |diff| {diff:.1e})")
    if args.out:
        from zoo.core.fileio import write_json_atomic

        write_json_atomic(args.out, {"images": args.images, "detections": len(dets), "repeats": args.repeats,
                                     "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
