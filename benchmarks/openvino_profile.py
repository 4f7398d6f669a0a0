"""Where OpenVINO spends LeYOLO's time: per-layer profile grouped by kind, next to each kind's share of MACs.

Why: LeYOLO-Nano has 2.5x fewer FLOPs than YOLO11n, yet on OpenVINO the two run about as fast (issue 14).
The CPU plugin's own counters (``PERF_COUNT``) say how long each executed node took; convolutions are
matched to the ONNX graph they came from (OpenVINO keeps the ONNX node name as the prefix of the fused
node's name) to get their MACs, so every kind of layer gets *ms per GMAC*: a kind whose share of time far
exceeds its share of MACs is where the FLOP advantage is lost (depthwise convolutions are memory-bound:
few MACs per byte moved).

    python benchmarks/openvino_profile.py --model leyolo-nano --weights LeYOLONano.pt --imgsz 640 --threads 2
    python benchmarks/openvino_profile.py --onnx nano-cpu.onnx --xml nano-int8.xml   # an int8 IR of that graph
"""
from __future__ import annotations

import argparse
import collections
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import onnx  # noqa: E402
from zoo.export import export_onnx  # noqa: E402

import zoo  # noqa: E402
from zoo.core.fileio import write_json_atomic  # noqa: E402


def conv_macs(path: Path) -> dict[str, tuple[str, int]]:
    """ONNX Conv node name -> (kind, MACs at batch 1): depthwise, pointwise (1x1) or dense kxk."""
    model = onnx.shape_inference.infer_shapes(onnx.load(str(path)))
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim] for v in
              list(model.graph.value_info) + list(model.graph.output) + list(model.graph.input)}
    inits = {t.name: list(t.dims) for t in model.graph.initializer}
    out = {}
    for node in model.graph.node:
        if node.op_type != "Conv" or node.input[1] not in inits or node.output[0] not in shapes:
            continue
        c_out, c_in_g, kh, kw = inits[node.input[1]]
        groups = next((a.i for a in node.attribute if a.name == "group"), 1)
        _, _, h, w = shapes[node.output[0]]
        kind = "depthwise conv" if groups > 1 and c_in_g == 1 else ("1x1 conv" if kh * kw == 1 else f"dense {kh}x{kw} conv")
        out[node.name] = (kind, c_out * h * w * c_in_g * kh * kw)
    return out


def kind_of(node_type: str, name: str, convs: dict[str, tuple[str, int]]) -> tuple[str, int]:
    match = max((n for n in convs if name.startswith(n)), key=len, default=None)
    if match is not None and node_type.lower() in ("convolution", "groupconvolution", "fullyconnected", "subgraph"):
        return convs[match]
    return {"Eltwise": "eltwise (SiLU, add, mul)", "Concatenation": "Concat", "Split": "Split",
            "Interpolate": "Resize", "Pooling": "MaxPool", "Reorder": "layout reorders",
            "Softmax": "decode tail", "Reshape": "reshape", "Transpose": "decode tail"}.get(node_type, node_type), 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="leyolo-nano")
    parser.add_argument("--weights", default=None)
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--precision", default="f32", help="OpenVINO inference precision (f32, bf16)")
    parser.add_argument("--onnx", default=None, help="profile this ONNX file instead of exporting --model")
    parser.add_argument("--xml", default=None, help="profile this IR (e.g. an int8 one); MACs from the float ONNX graph")
    parser.add_argument("--out", type=Path, default=Path("runs/bench/openvino_profile.json"))
    args = parser.parse_args()
    import openvino as ov

    with tempfile.TemporaryDirectory(prefix="effzoo-ov-profile-") as tmp:
        path = Path(args.onnx) if args.onnx else export_onnx(
            zoo.create_model(args.model, checkpoint_path=args.weights).eval(), "cpu", imgsz=args.imgsz, batch=1,
            out=Path(tmp) / "model.onnx").path
        convs = conv_macs(path)
        graph = ov.Core().read_model(args.xml) if args.xml else ov.convert_model(str(path))
        compiled = ov.Core().compile_model(graph, "CPU", {
            "PERF_COUNT": "YES", "INFERENCE_NUM_THREADS": args.threads, "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_PRECISION_HINT": args.precision})
    request = compiled.create_infer_request()
    x = np.random.default_rng(0).random((1, 3, args.imgsz, args.imgsz), dtype=np.float32)
    ms, macs = collections.Counter(), collections.Counter()
    counted: set[str] = set()
    for _ in range(3):
        request.infer({0: x})
    for _ in range(args.runs):
        request.infer({0: x})
        for info in request.get_profiling_info():
            if info.status != info.Status.EXECUTED:
                continue
            kind, node_macs = kind_of(info.node_type, info.node_name, convs)
            ms[kind] += info.real_time.total_seconds() * 1e3 / args.runs
            if info.node_name not in counted:
                counted.add(info.node_name)
                macs[kind] += node_macs
    total_ms, total_macs = sum(ms.values()), sum(macs.values()) or 1
    rows = []
    print(f"{args.model}@{args.imgsz}, OpenVINO {ov.__version__} CPU, {args.threads} threads, precision {args.precision}: "
          f"{total_ms:.1f} ms summed over nodes, {total_macs / 1e9:.2f} GMAC in convolutions")
    print(f"{'kind':<28} {'ms':>8} {'time %':>7} {'MAC %':>7} {'ms/GMAC':>8}")
    for kind, t in ms.most_common():
        share_macs = macs[kind] / total_macs
        per_gmac = t / (macs[kind] / 1e9) if macs[kind] else None
        rows.append({"kind": kind, "ms": t, "time_share": t / total_ms, "mac_share": share_macs, "ms_per_gmac": per_gmac})
        print(f"{kind:<28} {t:>8.2f} {100 * t / total_ms:>6.1f}% {100 * share_macs:>6.1f}% "
              f"{per_gmac if per_gmac is not None else float('nan'):>8.2f}")
    write_json_atomic(args.out, {"model": args.model, "imgsz": args.imgsz, "threads": args.threads,
                                 "precision": args.precision, "rows": rows})
    print(f"saved {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
