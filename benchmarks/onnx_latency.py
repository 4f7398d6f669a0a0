"""Batch-1 CPU latency: eager PyTorch vs onnxruntime float32 (cpu target) vs onnxruntime int8 (edge target).

LeYOLO-Nano at 320/640 and LeYOLO-Small at 480/640, exported with ``zoo.export.export_onnx`` (parity-checked),
plus YOLO11n and YOLOv8n at 640 exported by ultralytics when that optional peer is installed (built from
``yolo11n.yaml`` / ``yolov8n.yaml``, no weights needed: latency does not depend on them). Every
candidate runs in one interleaved loop (``zoo.export.latency``): intra-op threads = cores, medians of
repeated blocks, quartiles as the spread. Ratios are to YOLO11n@640 on onnxruntime when it is there
(target: LeYOLO-Nano@640 <= 0.6x), else to each row's eager PyTorch time.

    python benchmarks/onnx_latency.py
    python benchmarks/onnx_latency.py --quick --out runs/bench/onnx_latency.json
    PYTHONPATH=/path/to/ultralytics-peer python benchmarks/onnx_latency.py   # with the YOLO peers
"""
from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import logging
import platform
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from zoo.export import export_onnx  # noqa: E402
from zoo.export.latency import default_threads, interleaved_latency, ort_runner, torch_runner  # noqa: E402

import zoo  # noqa: E402

CASES = (("leyolo-nano", 320), ("leyolo-nano", 640), ("leyolo-small", 480), ("leyolo-small", 640))
PEERS = (("yolo11n", "yolo11n.yaml"), ("yolov8n", "yolov8n.yaml"))
BASELINE = "yolo11n@640 ort-fp32"


def export_peer(yaml: str, folder: Path, imgsz: int = 640) -> Path:
    """ultralytics' own ONNX export of a model built from its YAML (random init, offline)."""
    from ultralytics import YOLO

    slim = importlib.util.find_spec("onnxslim") is not None  # as our cpu files: simplified when available
    with contextlib.redirect_stdout(io.StringIO()):
        path = YOLO(yaml).export(format="onnx", imgsz=imgsz, opset=17, simplify=slim, dynamic=False, batch=1)
    target = folder / Path(path).name
    Path(path).replace(target)
    return target


def build_candidates(args: argparse.Namespace, folder: Path) -> tuple[dict, list[str]]:
    from zoo.eval.datasets import SyntheticConfig, synthetic_dataset

    calib = synthetic_dataset("train", SyntheticConfig(num_train=8, num_val=4, image_size=256, seed=0),
                              root=folder / "shapes")
    candidates, notes = {}, []
    for name, imgsz in CASES:
        weights = args.weights if name == "leyolo-nano" else None
        model = zoo.create_model(name, checkpoint_path=weights).eval()
        x = torch.rand(1, 3, imgsz, imgsz, generator=torch.Generator().manual_seed(0))
        tag = f"{name.removeprefix('leyolo-')}@{imgsz}"
        cpu = export_onnx(model, "cpu", imgsz=imgsz, batch=1, out=folder / f"{tag}-cpu.onnx")
        edge = export_onnx(model, "edge", imgsz=imgsz, batch=1, calibration=calib, calibration_size=8,
                           out=folder / f"{tag}-edge.onnx")
        print(f"exported {tag}: cpu {cpu.parity.summary()}; edge {edge.parity.summary()}", flush=True)
        candidates[f"{tag} torch"] = torch_runner(model.fuse(), x)
        candidates[f"{tag} ort-fp32"] = ort_runner(cpu.path, x, args.threads)
        candidates[f"{tag} ort-int8"] = ort_runner(edge.path, x, args.threads)
    if importlib.util.find_spec("ultralytics") is None:
        notes.append("ultralytics not installed: YOLO11n/YOLOv8n skipped, ratios are to each row's eager PyTorch "
                     "(pip install ultralytics to compare against YOLO11n@640)")
    else:
        x = torch.rand(1, 3, 640, 640, generator=torch.Generator().manual_seed(0))
        for tag, yaml in PEERS:
            try:
                candidates[f"{tag}@640 ort-fp32"] = ort_runner(export_peer(yaml, folder), x, args.threads)
            except Exception as err:  # an optional peer must not sink the benchmark
                notes.append(f"{tag}: ultralytics export failed ({type(err).__name__}: {err}); skipped")
    return candidates, notes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", default=None, help="Nano checkpoint (latency does not depend on it)")
    parser.add_argument("--threads", type=int, default=default_threads(), help="intra-op threads (default: cores)")
    parser.add_argument("--blocks", type=int, default=10, help="timed blocks per candidate (default 10)")
    parser.add_argument("--calls", type=int, default=3, help="calls per block (default 3)")
    parser.add_argument("--quick", action="store_true", help="5 blocks of 2 calls")
    parser.add_argument("--out", type=Path, default=Path("runs/bench/onnx_latency.json"))
    args = parser.parse_args()
    if args.quick:
        args.blocks, args.calls = 5, 2
    torch.set_num_threads(args.threads)  # eager PyTorch gets the same intra-op threads as onnxruntime
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    import onnxruntime as ort

    from zoo.core.fileio import write_json_atomic

    env = (f"CPU {platform.processor() or platform.machine()}, {args.threads} threads, torch {torch.__version__}, "
           f"onnxruntime {ort.__version__}, python {platform.python_version()}, batch 1, float32 inputs")
    print(env, flush=True)
    with tempfile.TemporaryDirectory(prefix="effzoo-onnx-bench-") as tmp:
        candidates, notes = build_candidates(args, Path(tmp))
        stats = interleaved_latency(candidates, blocks=args.blocks, calls_per_block=args.calls)
    base = stats.get(BASELINE)
    rows = []
    print(f"\n{'candidate':<24} {'median ms':>10} {'q1-q3 ms':>15} {'ratio':>7}  ratio to")
    for name, s in stats.items():
        ref = base if base is not None else stats.get(name.rsplit(" ", 1)[0] + " torch", s)
        ratio = s.median_ms / ref.median_ms
        rows.append({**s.to_dict(), "ratio": ratio, "ratio_to": ref.name})
        print(f"{name:<24} {s.median_ms:>10.2f} {s.q1_ms:>7.2f}-{s.q3_ms:<7.2f} {ratio:>7.3f}  {ref.name}")
    for note in notes:
        print(f"note: {note}")
    write_json_atomic(args.out, {"environment": env, "blocks": args.blocks, "calls_per_block": args.calls,
                                 "baseline": BASELINE if base is not None else "eager PyTorch of the same row",
                                 "rows": rows, "notes": notes})
    print(f"saved {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
