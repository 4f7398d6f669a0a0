"""Deployment latency, side by side: eager PyTorch, onnxruntime fp32/int8, OpenVINO fp32/int8 (issue 14).

LeYOLO-Nano@320/640 and LeYOLO-Small@640, batch 1, at 1 and 2 threads; YOLO11n / YOLOv8n on onnxruntime
and OpenVINO when ultralytics is installed (built from their YAMLs: latency does not depend on weights);
``--official-onnx FILE`` adds a row for a file exported by the official LeYOLO code. Every file is made by
``zoo export`` code (parity-checked ONNX, IR from it, ``edge`` int8, NNCF int8). All candidates of one
model and thread count run in one interleaved loop (``zoo.export.latency``): medians of blocks,
quartiles as spread, ratios to ORT fp32 of the same model and to YOLO11n ORT fp32 when present.

``ov-fp32`` runs at float32 inference precision (what the parity check measured); ``ov-default`` is the
same IR with the plugin's default precision, which is bfloat16 on CPUs with native bf16 (printed).

With the released Nano checkpoint, the int8/fp16 files of Nano@640 also get their agreement with the
float32 model on real photos (``zoo.tasks.detection.agreement``: the held-out photos of the export check,
plus bus.jpg when ``--bus`` is given), so speed and accuracy come from the same files.

    python benchmarks/deploy_latency.py --weights LeYOLONano.pt --bus bus.jpg --out runs/bench/deploy.json
    python benchmarks/deploy_latency.py --quick --cases nano@640 --threads 2
"""
from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from zoo.export import export_onnx  # noqa: E402
from zoo.export.latency import interleaved_latency, openvino_runner, ort_runner, torch_runner  # noqa: E402
from zoo.export.openvino_export import export_openvino  # noqa: E402

import zoo  # noqa: E402
from zoo.benchmark.deployment import REFERENCE_SIZE, reference_files  # noqa: E402
from zoo.benchmark.markdown import cpu_flags_text  # noqa: E402
from zoo.benchmark.report import cpu_flags, machine  # noqa: E402
from zoo.core.fileio import write_json_atomic  # noqa: E402

CASES = {"nano@320": ("leyolo-nano", 320), "nano@640": ("leyolo-nano", 640), "small@640": ("leyolo-small", 640)}
def cpu_description() -> str:
    """CPU model name and the flags int8/bf16 speed depends on (VNNI, AMX)."""
    return f"{machine()['cpu']}; {cpu_flags_text(cpu_flags())}"


def export_files(case: str, weights: str | None, folder: Path, calib_size: int) -> dict[str, Path]:
    """The four deployment files of one case, exported by effzoo's own code."""
    name, imgsz = CASES[case]
    model = zoo.create_model(name, checkpoint_path=weights if name == "leyolo-nano" else None).eval()
    common = {"imgsz": imgsz, "batch": 1}
    # Only the released checkpoint has a meaningful accuracy check; untrained models are timed, not judged.
    check = weights is not None and name == "leyolo-nano"
    files = {"ort-fp32": export_onnx(model, "cpu", out=folder / f"{case}-cpu.onnx", **common).path,
             "ort-int8": export_onnx(model, "edge", out=folder / f"{case}-edge.onnx", calibration_size=calib_size,
                                     check=check, **common).path,
             "ov-fp32": export_openvino(model, out=folder / f"{case}-ov.xml", **common).path,
             "ov-int8": export_openvino(model, int8=True, out=folder / f"{case}-ov-int8.xml",
                                        calibration_size=calib_size, check=check, **common).path}
    if case == "nano@640":
        files["ort-fp16"] = export_onnx(model, "gpu", out=folder / f"{case}-gpu.onnx", **common).path
    return files


def peer_files(folder: Path, notes: list[str]) -> dict[str, tuple[Path, Path]]:
    """YOLO11n / YOLOv8n ONNX (ultralytics' own export) and their IR, as ``zoo bench`` makes them."""
    return {f"{name}@{REFERENCE_SIZE}": files for name, files in reference_files(folder, notes).items()}


def agreement_rows(files: dict[str, Path], weights: str, bus: str | None) -> dict[str, dict[str, float]]:
    """Agreement of each Nano@640 file with the float32 PyTorch model on the held-out photos (+ bus.jpg)."""
    from zoo.eval.images import load_image
    from zoo.eval.photos import real_photos
    from zoo.runtime.exported import open_exported
    from zoo.tasks.detection.agreement import agreement
    from zoo.tasks.detection.export_data import AGREEMENT_PHOTOS

    ref = zoo.create_model("leyolo-nano", checkpoint_path=weights).eval()
    photos = [(p.name, p.image) for p in real_photos(list(AGREEMENT_PHOTOS))]
    if bus:
        photos.insert(0, ("bus", load_image(bus)))
    out = {}
    for kind, path in files.items():
        found = agreement(ref, open_exported(path), [im for _, im in photos], imgsz=640, names=[n for n, _ in photos])
        out[kind] = {"AP": found.ap, "AP50": found.ap50, "reference_boxes": found.reference_boxes,
                     "images": found.images}
        print(f"agreement nano@640 {kind}: mAP50-95 {found.ap:.3f}, mAP50 {found.ap50:.3f} "
              f"({found.reference_boxes} reference boxes on {', '.join(found.images)})", flush=True)
    return out


def time_case(case: str, files: dict[str, Path], threads: int, args: argparse.Namespace,
              peers: dict[str, tuple[Path, Path]]) -> list[dict]:
    name, imgsz = CASES[case]
    x = torch.rand(1, 3, imgsz, imgsz, generator=torch.Generator().manual_seed(0))
    torch.set_num_threads(threads)
    model = zoo.create_model(name).eval()
    cands = {f"{case} eager": torch_runner(model.fuse() if hasattr(model, "fuse") else model, x)}
    for kind, path in files.items():
        if kind.startswith("ort"):
            cands[f"{case} {kind}"] = ort_runner(path, x, threads)
        else:
            cands[f"{case} {kind}"] = openvino_runner(path, x, threads)
    cands[f"{case} ov-default"] = openvino_runner(files["ov-fp32"], x, threads, inference_precision=None)
    if args.official_onnx and case == "nano@640":
        cands["nano@640 official-onnx ort-fp32"] = ort_runner(args.official_onnx, x, threads)
    if imgsz == 640:
        for tag, (onnx_path, xml) in peers.items():
            cands[f"{tag} ort-fp32"] = ort_runner(onnx_path, x, threads)
            cands[f"{tag} ov-fp32"] = openvino_runner(xml, x, threads)
            cands[f"{tag} ov-default"] = openvino_runner(xml, x, threads, inference_precision=None)
    stats = interleaved_latency(cands, blocks=args.blocks, calls_per_block=args.calls)
    base = stats[f"{case} ort-fp32"].median_ms
    yolo = stats.get("yolo11n@640 ort-fp32")
    rows = []
    for cand, s in stats.items():
        row = {**s.to_dict(), "case": case, "threads": threads, "ratio_to_ort_fp32": s.median_ms / base,
               "ratio_to_yolo11n_ort_fp32": s.median_ms / yolo.median_ms if yolo else None}
        rows.append(row)
        extra = f"  x{row['ratio_to_yolo11n_ort_fp32']:.2f} of YOLO11n" if yolo else ""
        print(f"{threads}T {cand:<34} {s.median_ms:8.2f} ms [{s.q1_ms:.2f}-{s.q3_ms:.2f}]  "
              f"x{row['ratio_to_ort_fp32']:.2f} of ORT fp32{extra}", flush=True)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", default=None, help="released Nano checkpoint (agreement rows need it)")
    parser.add_argument("--bus", default=None, help="bus.jpg, added to the agreement photos")
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="thread counts (default 1 2)")
    parser.add_argument("--blocks", type=int, default=10, help="timed blocks per candidate (default 10)")
    parser.add_argument("--calls", type=int, default=3, help="calls per block (default 3)")
    parser.add_argument("--calib-size", type=int, default=8, help="int8 calibration inputs (default 8)")
    parser.add_argument("--official-onnx", default=None, help="a Nano@640 ONNX file exported by the official code")
    parser.add_argument("--quick", action="store_true", help="5 blocks of 2 calls")
    parser.add_argument("--out", type=Path, default=Path("runs/bench/deploy_latency.json"))
    args = parser.parse_args()
    if args.quick:
        args.blocks, args.calls = 5, 2
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    import onnxruntime as ort
    import openvino as ov

    default_precision = str(ov.Core().get_property("CPU", "INFERENCE_PRECISION_HINT"))
    env = {"cpu": cpu_description(), "torch": torch.__version__, "onnxruntime": ort.__version__,
           "openvino": ov.__version__, "openvino_default_precision": default_precision, "batch": 1,
           "blocks": args.blocks, "calls_per_block": args.calls}
    print(env, flush=True)
    notes: list[str] = []
    rows, agreement = [], {}
    with tempfile.TemporaryDirectory(prefix="effzoo-deploy-bench-") as tmp:
        peers = peer_files(Path(tmp), notes)
        for case in args.cases:
            files = export_files(case, args.weights, Path(tmp), args.calib_size)
            if case == "nano@640" and args.weights:
                agreement = agreement_rows(files, args.weights, args.bus)
            for threads in args.threads:
                rows += time_case(case, files, threads, args, peers)
    write_json_atomic(args.out, {"environment": env, "rows": rows, "agreement_nano640": agreement, "notes": notes})
    for note in notes:
        print(f"note: {note}")
    print(f"saved {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
