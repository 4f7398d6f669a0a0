"""Where onnxruntime spends a detector's time, float32 (``cpu`` file) against int8 (``edge`` file), per kind of op.

Why: whether the ``edge`` int8 file beats float depends on which of its kernels run faster in integer
(dense convolutions, with VNNI) and which slower (depthwise convolutions, the SiLU as a lookup-table
Sigmoid plus an integer Mul instead of one fused float kernel), and the mix depends on the CPU (issue 14).
onnxruntime's own profiler times every kernel of the graph it actually runs (after its fusions); kernels
are grouped by op type, convolutions split into depthwise / 1x1 / dense by the group and kernel size of the
node in the optimised graph. Columns are ms per call, summed over the kernels of a kind.

    python benchmarks/ort_profile.py --weights LeYOLONano.pt --imgsz 640 --threads 1 2
"""
from __future__ import annotations

import argparse
import collections
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402
from zoo.export import export_onnx  # noqa: E402
from deploy_latency import cpu_description  # noqa: E402  (benchmarks/ is on sys.path when run as a script)

import zoo  # noqa: E402
from zoo.core.fileio import write_json_atomic  # noqa: E402

CONV_OPS = {"Conv", "QLinearConv", "FusedConv", "ConvInteger"}


def conv_kinds(path: Path) -> dict[str, str]:
    """Node name -> depthwise / 1x1 / dense kxk conv, for the convolutions of an (optimised) graph."""
    model = onnx.load(str(path))
    inits = {t.name: list(t.dims) for t in model.graph.initializer}
    out = {}
    for node in model.graph.node:
        if node.op_type not in CONV_OPS:
            continue
        attrs = {a.name: a for a in node.attribute}
        group = attrs["group"].i if "group" in attrs else 1
        weight = node.input[3] if node.op_type == "QLinearConv" else node.input[1]
        kernel = list(attrs["kernel_shape"].ints) if "kernel_shape" in attrs else inits.get(weight, [0, 0, 0, 0])[2:]
        if group > 1:
            out[node.name] = "depthwise conv"
        else:
            out[node.name] = "1x1 conv" if list(kernel) == [1, 1] else f"dense {'x'.join(map(str, kernel))} conv"
    return out


def profile(path: Path, x: np.ndarray, threads: int, calls: int, folder: Path) -> dict[str, float]:
    """ms per call per kind of kernel (onnxruntime's profiler, full graph optimisation, sequential)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.optimized_model_filepath = str(folder / f"{path.stem}-{threads}t-optimized.onnx")
    options.log_severity_level = 3
    options.enable_profiling = True
    options.profile_file_prefix = str(folder / f"{path.stem}-{threads}t")
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    for _ in range(calls + 3):
        session.run(None, {name: x})
    events = json.loads(Path(session.end_profiling()).read_text())
    kinds = conv_kinds(Path(options.optimized_model_filepath))
    runs = [e for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"]
    first = runs[3]["ts"] if len(runs) > 3 else 0  # the first 3 runs of this session are warm-up
    totals: dict[str, float] = collections.defaultdict(float)
    for e in events:
        if e.get("cat") != "Node" or not e["name"].endswith("_kernel_time") or e["ts"] < first:
            continue
        node = e["name"][: -len("_kernel_time")]
        op = e.get("args", {}).get("op_name", "?")
        totals[kinds.get(node, op) if op in CONV_OPS else op] += e["dur"] / 1e3 / calls
    totals["model_run (wall)"] = sum(r["dur"] for r in runs[3:]) / 1e3 / max(1, len(runs[3:]))
    return dict(totals)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="leyolo-nano")
    p.add_argument("--weights", default=None, help="checkpoint (int8 calibration is more faithful with real weights)")
    p.add_argument("--imgsz", type=int, default=640)
    p.add_argument("--threads", type=int, nargs="+", default=[1])
    p.add_argument("--calls", type=int, default=10)
    p.add_argument("--out", default=None, help="JSON file for the table")
    args = p.parse_args(argv)
    model = zoo.create_model(args.model, checkpoint_path=args.weights).eval()
    x = np.random.default_rng(0).random((1, 3, args.imgsz, args.imgsz), dtype=np.float32)
    print(cpu_description(), f"onnxruntime {ort.__version__}", flush=True)
    result = {}
    with tempfile.TemporaryDirectory(prefix="effzoo-ort-profile-") as tmp:
        folder = Path(tmp)
        files = {"fp32": export_onnx(model, "cpu", imgsz=args.imgsz, batch=1, out=folder / "cpu.onnx").path,
                 "int8": export_onnx(model, "edge", imgsz=args.imgsz, batch=1, out=folder / "edge.onnx",
                                     check=False).path}
        for threads in args.threads:
            tables = {k: profile(Path(f), x, threads, args.calls, folder) for k, f in files.items()}
            result[f"{threads}t"] = tables
            kinds = sorted(set(tables["fp32"]) | set(tables["int8"]),
                           key=lambda k: -(tables["fp32"].get(k, 0) + tables["int8"].get(k, 0)))
            print(f"\n{args.model}@{args.imgsz}, {threads} thread(s), ms per call (summed kernel times)")
            print("| kind | fp32 ms | int8 ms |\n|---|---:|---:|")
            for k in kinds:
                print(f"| {k} | {tables['fp32'].get(k, 0):.2f} | {tables['int8'].get(k, 0):.2f} |")
    if args.out:
        write_json_atomic(args.out, {"cpu": cpu_description(), "model": args.model,
                                                     "imgsz": args.imgsz, "profile": result})
    return 0


if __name__ == "__main__":
    sys.exit(main())
