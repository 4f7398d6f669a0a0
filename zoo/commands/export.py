"""``zoo export MODEL --target cpu|gpu|edge`` -> ``zoo.export.export_onnx``: a parity-checked ONNX file."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from zoo.commands.options import size_for
from zoo.core.registry import get_card
from zoo.export.hf_export import export_hf
from zoo.export.onnx_export import ExportResult, export_onnx
from zoo.export.openvino_export import export_openvino
from zoo.tasks import get_task

TARGETS = ("cpu", "gpu", "edge", "openvino")

EPILOG = """examples:
  zoo export leyolo-nano --weights LeYOLONano.pt --target cpu --imgsz 640
  zoo export leyolo-nano --weights LeYOLONano.pt --target gpu --out nano-fp16.onnx
  zoo export leyolo-nano --weights best.safetensors --target edge --data synthetic --calib-size 64
  zoo export leyolo-nano --weights LeYOLONano.pt --nms --conf 0.25 --iou 0.7 --batch 1
  zoo export pi-gpt2-tiny-sm-ln-g --weights runs/train/best.safetensors --seq-len 64 --target cpu
  zoo export pi-gpt2-small-gpt2 --weights gpt2.safetensors --format hf --out gpt2-hf/
  zoo export leyolo-nano --weights LeYOLONano.pt --target openvino --batch 1 --out nano.xml
  zoo export leyolo-nano --weights LeYOLONano.pt --target openvino --int8 --data photos --batch 1

targets: cpu = float32, simplified with onnxslim when installed; gpu = float16 inside (float32 inputs and
outputs unless --io-fp16) for onnxruntime's CUDA provider; edge = int8 static QDQ, per-channel weights,
calibrated on --calib-size images (detectors: --data, default the synthetic set) or token chunks (LMs).
Every export is checked against PyTorch (cpu 1e-4, gpu 1e-2 normalised max abs diff; edge: AP drop or
perplexity increase on held-out data) and a file that fails is not written. Run it with zoo.export.OnnxModel
or: zoo predict MODEL --weights FILE.onnx --source bus.jpg
"""


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("export", help="export a model to ONNX (cpu, gpu or edge), parity-checked",
                       description="Export a registered model to an ONNX file for onnxruntime on CPU, GPU (float16) "
                                   "or edge (int8), and check that it computes what the PyTorch model computes.",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="registry name, e.g. leyolo-nano (see zoo list)")
    p.add_argument("--weights", default=None, help="checkpoint (.pt official or effzoo .safetensors); "
                                                   "without it the untrained model is exported")
    p.add_argument("--target", choices=TARGETS, default="cpu",
                   help="runtime target (default cpu; openvino writes an IR .xml + .bin)")
    p.add_argument("--format", choices=("onnx", "hf"), default="onnx",
                   help="onnx (default) or hf: a Hugging Face GPT-2 folder for GPT2LMHeadModel.from_pretrained "
                        "(pi-gpt2-*-gpt2, sm-ln-g, sm-ln-r; needs --out DIR)")
    size = p.add_mutually_exclusive_group()
    size.add_argument("--imgsz", type=int, default=None, help="detector input side (default: the model's)")
    size.add_argument("--seq-len", type=int, default=None, help="language-model sequence length (default: context)")
    p.add_argument("--batch", default="dynamic", help="'dynamic' (default) or a fixed batch size")
    p.add_argument("--dynamic-hw", action="store_true", help="detectors: accept any height/width (multiples of 32)")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset, 17 or newer (default 17)")
    p.add_argument("--nms", action="store_true",
                   help="detectors: end-to-end graph with NMS -> (boxes, scores, classes)")
    p.add_argument("--conf", type=float, default=0.25, help="--nms confidence threshold (default 0.25)")
    p.add_argument("--iou", type=float, default=0.7, help="--nms IoU threshold (default 0.7)")
    p.add_argument("--max-det", type=int, default=300, help="--nms detections kept per image (default 300)")
    p.add_argument("--fp16", action="store_true", help="openvino: float16 weights (half the file)")
    p.add_argument("--int8", action="store_true", help="openvino: NNCF int8 quantization on --data / --calib-size")
    p.add_argument("--io-fp16", action="store_true", help="gpu: float16 inputs/outputs instead of float32")
    p.add_argument("--full-int8", action="store_true",
                   help="edge: quantize conv outputs too (all-integer graph for NPUs; less accurate)")
    p.add_argument("--data", default=None,
                   help="edge: calibration/eval data (detectors: 'synthetic' (default), a data YAML, COCO JSON, "
                        "dataset folder, or an image folder/glob for calibration only)")
    p.add_argument("--calib-size", type=int, default=32, help="edge: calibration images/chunks (default 32)")
    p.add_argument("--eval-size", type=int, default=64, help="edge: held-out images/chunks for the accuracy check "
                                                             "(default 64)")
    p.add_argument("--tolerance", type=float, default=None, help="override the parity bound of the target")
    p.add_argument("--no-check", action="store_true", help="skip the parity check (not recommended)")
    p.add_argument("--no-simplify", action="store_true", help="skip onnxslim even when it is installed")
    p.add_argument("--out", type=Path, default=None, help="output file (default runs/export/MODEL-TARGET.onnx)")
    p.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    return p


def _batch(value: str) -> int | str:
    if value == "dynamic":
        return value
    try:
        batch = int(value)
    except ValueError:
        raise ValueError(f"--batch must be 'dynamic' or a positive integer (got {value!r}).") from None
    if batch < 1:
        raise ValueError(f"--batch must be 'dynamic' or a positive integer (got {batch}).")
    return batch


def run(args: argparse.Namespace) -> int:
    card = get_card(args.model)  # unknown names fail here, with suggestions, before anything is built
    if args.out is not None and args.out.exists() and not args.force:  # as zoo convert: never a silent overwrite
        raise ValueError(f"{args.out} already exists; pass --force to overwrite it.")
    if args.format == "hf":
        if args.out is None:
            raise ValueError("--format hf needs --out DIR, the Hugging Face folder to create.")
        print(export_hf(card.name, weights=args.weights, out=args.out).summary())
        return 0
    size_for(card, imgsz=args.imgsz, seq_len=args.seq_len)
    if (args.nms or args.dynamic_hw) and get_task(card.task).size_arg != "imgsz":
        raise ValueError(f"{args.model} is a {get_task(card.task).title}: --dynamic-hw and --nms are for detectors.")
    if (args.fp16 or args.int8) and args.target != "openvino":
        raise ValueError(f"--fp16 and --int8 are options of --target openvino (got --target {args.target}; the gpu target "
                         "is float16 and edge is int8).")
    if args.target == "openvino":
        if args.nms or args.io_fp16 or args.full_int8:
            raise ValueError("--nms, --io-fp16 and --full-int8 are ONNX options; --target openvino takes --fp16 or --int8.")
        result = export_openvino(
            args.model, fp16=args.fp16, int8=args.int8, weights=args.weights, imgsz=args.imgsz, seq_len=args.seq_len,
            batch=_batch(args.batch), opset=args.opset, dynamic_hw=args.dynamic_hw, out=args.out, calibration=args.data,
            eval_data=args.data, calibration_size=args.calib_size, eval_size=args.eval_size, check=not args.no_check,
            tolerance=args.tolerance, simplify=False if args.no_simplify else None, progress=True)
        return _report(result, args.json)
    result = export_onnx(
        args.model, args.target, weights=args.weights, imgsz=args.imgsz, seq_len=args.seq_len, batch=_batch(args.batch),
        opset=args.opset, nms=args.nms, conf=args.conf, iou=args.iou, max_det=args.max_det, dynamic_hw=args.dynamic_hw,
        io_fp16=args.io_fp16, full_int8=args.full_int8, out=args.out, calibration=args.data, eval_data=args.data,
        calibration_size=args.calib_size, eval_size=args.eval_size, check=not args.no_check, tolerance=args.tolerance,
        simplify=False if args.no_simplify else None, progress=True)
    return _report(result, args.json)


def _report(result: ExportResult, as_json: bool) -> int:
    if as_json:
        print(json.dumps(result.to_dict(), indent=2))
        return 0
    shape = "x".join(str(d) for d in result.inputs)
    print(f"{result.model} -> {result.path} ({result.target}, {result.precision}, opset {result.opset}, "
          f"{result.size_mb:.2f} MB, input {shape}, outputs {', '.join(result.outputs)}, {result.seconds:.1f} s)")
    print(result.parity.summary())
    if result.parity.accuracy:
        acc = result.parity.accuracy
        metric = acc["metric"]
        print(f"{metric}: PyTorch {acc['torch'][metric]:.4f} -> {result.target} {result.precision} "
              f"{acc['onnx'][metric]:.4f} on {acc['size']} held-out samples ({acc['data']})")
    for note in result.notes:
        print(f"note: {note}")
    return 0
