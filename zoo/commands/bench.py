"""``zoo bench [PATTERN]`` -> ``zoo.bench``: cost, latency and measured/reported quality of the zoo."""
from __future__ import annotations

import argparse
import sys

from zoo.benchmark.run import bench

EPILOG = """examples:
  zoo bench                                  # everything, default budgets (what `make bench` runs)
  zoo bench 'leyolo-*' --no-latency          # detectors only, cost and quality
  zoo bench 'leyolo-*' --threads 1           # detectors, with deployment rows (eager / onnxruntime /
                                             # OpenVINO, fp32 and int8) and pareto_latency.png
  zoo bench --no-deploy                      # latency, but no deployment rows (no exports)
  zoo bench 'pi-gpt2-tiny-*' --out runs/bench-tiny
  zoo bench leyolo-nano --weights-dir weights/ --data coco.yaml
  zoo bench --quick 'pi-gpt2-tiny-sm-ln-g'   # a smoke run in seconds

Writes OUT/bench.json (everything, with versions, machine and settings), OUT/bench.md (the tables),
OUT/pareto_detectors.png, OUT/pareto_pi.png and OUT/pareto_latency.png (detectors' mAP against
milliseconds per runtime, YOLO11n / YOLOv8n as reference points when ultralytics is installed), then
prints the tables. OpenVINO rows need the openvino extra (pip install effzoo[openvino]). Measured
numbers come from this run; reported ones are the papers' (labelled, never in the same column).
Trained runs are cached in OUT/cache/ and reused when the settings match (--fresh retrains).
"""


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("bench", help="benchmark the zoo: FLOPs, nonlinearities, latency and accuracy",
                       description="Measure every selected model's parameters, GFLOPs, nonlinearity census, PI cost, "
                                   "batch-1 CPU latency (eager and onnxruntime) and accuracy, next to the papers' "
                                   "numbers, and each detector's latency in every deployment runtime (eager, "
                                   "onnxruntime and OpenVINO, float32 and int8); write bench.json, bench.md and three "
                                   "Pareto plots.",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("pattern", nargs="?", default=None,
                   help="fnmatch pattern(s) over model names, comma-separated, e.g. 'leyolo-*' or "
                        "'leyolo-nano,pi-gpt2-tiny-*' (default: every registered model)")
    p.add_argument("--weights-dir", default=None,
                   help="folder with weights (released file names or NAME.safetensors), searched before the "
                        "local weights folder ($EFFZOO_WEIGHTS)")
    p.add_argument("--data", default="synthetic",
                   help="detection data for measured mAP: synthetic (default), a data YAML, a COCO JSON or a folder")
    p.add_argument("--lm-corpus", default="stdlib",
                   help="corpus for measured perplexity: stdlib (default: this Python's standard library) or a "
                        "folder of text files")
    p.add_argument("--quick", action="store_true", help="tiny budgets: a smoke run in seconds, not a result")
    p.add_argument("--latency", dest="latency", action="store_true", default=True,
                   help="measure batch-1 CPU latency, eager and onnxruntime (default)")
    p.add_argument("--no-latency", dest="latency", action="store_false", help="skip latency (and deployment)")
    p.add_argument("--no-deploy", dest="deploy", action="store_false", default=True,
                   help="skip the deployment rows (exports every detector to onnxruntime and OpenVINO, float32 and "
                        "int8, and times them side by side)")
    p.add_argument("--fresh", action="store_true", help="retrain instead of reusing cached training runs")
    p.add_argument("--threads", type=int, default=None,
                   help="torch and onnxruntime intra-op threads (default: one per core; use 1 on a machine shared "
                        "with other jobs)")
    p.add_argument("--out", default="runs/bench", help="output folder (default: runs/bench)")
    return p


def _command(args: argparse.Namespace) -> list[str]:
    """The command line as a user would retype it (non-default flags only), recorded in the report."""
    cmd = ["zoo", "bench"] + ([args.pattern] if args.pattern else [])
    for flag, value, default in (("--weights-dir", args.weights_dir, None), ("--data", args.data, "synthetic"),
                                 ("--lm-corpus", args.lm_corpus, "stdlib"), ("--out", args.out, "runs/bench"),
                                 ("--threads", args.threads, None)):
        if value != default:
            cmd += [flag, str(value)]
    flags = (("--quick", args.quick), ("--no-latency", not args.latency), ("--no-deploy", not args.deploy),
             ("--fresh", args.fresh))
    cmd += [f for f, on in flags if on]
    return cmd


def run(args: argparse.Namespace) -> int:
    result = bench(args.pattern, out=args.out, weights_dir=args.weights_dir, data=args.data,
                   lm_corpus=args.lm_corpus, quick=args.quick, latency=args.latency, deploy=args.deploy,
                   fresh=args.fresh, threads=args.threads, command=_command(args))
    print(result.markdown)
    print("wrote " + ", ".join(str(p) for p in result.files.values()))
    if result.errors:
        print(f"zoo bench: {len(result.errors)} measurement(s) failed:\n  " + "\n  ".join(result.errors),
              file=sys.stderr)
        return 1
    return 0
