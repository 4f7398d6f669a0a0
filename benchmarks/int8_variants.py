"""onnxruntime int8 variants of the ``edge`` file against float32, timed side by side (issue 14).

Why: whether a different quantizer choice would make the int8 file beat float on a CPU. Each variant is the
``edge`` export with one ``quantize_static`` option changed (per-tensor weights, signed int8 activations,
no SiLU range floor); all files and the ``cpu`` float32 file run in one interleaved loop per thread count.
Latency only (``check=False``): the agreement of the default file is in ``deploy_latency.py``.

    python benchmarks/int8_variants.py --weights LeYOLONano.pt --imgsz 640 --threads 1 2
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import onnxruntime.quantization as oq  # noqa: E402
import torch  # noqa: E402
from zoo.export import export_onnx  # noqa: E402
from zoo.export.latency import interleaved_latency, ort_runner  # noqa: E402

import zoo  # noqa: E402

VARIANTS = {"edge (default)": {}, "per-tensor weights": {"per_channel": False},
            "signed int8 activations (S8S8)": {"activation_type": oq.QuantType.QInt8},
            "no SiLU range floor": {"no_silu_floor": True}}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="leyolo-nano")
    p.add_argument("--weights", default=None)
    p.add_argument("--imgsz", type=int, default=640)
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--blocks", type=int, default=5)
    p.add_argument("--calls", type=int, default=3)
    args = p.parse_args()
    model = zoo.create_model(args.model, checkpoint_path=args.weights).eval()
    original = oq.quantize_static
    with tempfile.TemporaryDirectory(prefix="effzoo-int8-variants-") as tmp:
        files = {"float32 (cpu)": export_onnx(model, "cpu", imgsz=args.imgsz, batch=1, out=Path(tmp) / "cpu.onnx").path}
        for i, (name, change) in enumerate(VARIANTS.items()):
            def patched(*a, _change=dict(change), **kw):  # one quantize_static option changed
                if _change.pop("no_silu_floor", False):
                    kw["extra_options"] = {k: v for k, v in kw["extra_options"].items() if k != "TensorQuantOverrides"}
                return original(*a, **{**kw, **_change})
            oq.quantize_static = patched
            try:
                files[name] = export_onnx(model, "edge", imgsz=args.imgsz, batch=1, out=Path(tmp) / f"v{i}.onnx",
                                          check=False).path
            finally:
                oq.quantize_static = original
        x = torch.rand(1, 3, args.imgsz, args.imgsz, generator=torch.Generator().manual_seed(0))
        for threads in args.threads:
            torch.set_num_threads(threads)
            stats = interleaved_latency({k: ort_runner(f, x, threads) for k, f in files.items()},
                                        blocks=args.blocks, calls_per_block=args.calls, warmup=2)
            base = stats["float32 (cpu)"].median_ms
            for name, s in stats.items():
                print(f"{threads}T {name:<32} {s.median_ms:8.2f} ms [{s.q1_ms:.2f}-{s.q3_ms:.2f}]  "
                      f"x{s.median_ms / base:.2f} of float32", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
