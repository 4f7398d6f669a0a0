"""``zoo predict MODEL --weights W --source PATH|DIR|GLOB`` -> ``zoo.predict``; annotated images + one JSON."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from zoo.commands.options import RUNTIMES, add_nms_flags, add_runtime_flag, deprecated_alias
from zoo.core.factory import create_model
from zoo.core.fileio import write_json_atomic
from zoo.core.sizes import model_input_size
from zoo.runtime.onnx import open_detector, resolve_runtime
from zoo.tasks.detection.predict import DEFAULT_IMGSZ, predict, resolve_sources

EPILOG = """examples:
  zoo predict leyolo-nano --weights LeYOLONano.pt --source bus.jpg --out runs/predict
  zoo predict leyolo-nano --weights LeYOLONano.pt --source 'images/*.jpg' --conf 0.4 --imgsz 480
  zoo predict leyolo-nano --weights LeYOLONano.pt --source images/ --json
  zoo predict leyolo-nano --weights runs/export/leyolo-nano-cpu.onnx --source bus.jpg --runtime onnx
"""


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("predict", help="detect objects in images", epilog=EPILOG,
                       description="Detect objects with the official LeYOLO pre/post-processing; draw and save.",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="registry name, e.g. leyolo-nano")
    p.add_argument("--weights", required=True, help="checkpoint (.pt official or effzoo .safetensors), or an "
                                                    "exported .onnx file (see zoo export)")
    add_runtime_flag(p)
    deprecated_alias(p, "--backend", "--runtime", "runtime", choices=RUNTIMES)
    p.add_argument("--source", required=True, help="image file, folder, or glob pattern (quote it)")
    p.add_argument("--imgsz", type=int, default=None, help="letterbox size (default: the model's input size)")
    add_nms_flags(p, conf=0.25)
    p.add_argument("--classes", type=int, nargs="+", default=None, help="keep only these class ids")
    p.add_argument("--agnostic", action="store_true", help="class-agnostic NMS")
    p.add_argument("--batch", type=int, default=1, help="images per forward pass (default 1)")
    p.add_argument("--out", type=Path, default=Path("runs/predict"),
                   help="folder for annotated images and detections.json (default runs/predict)")
    deprecated_alias(p, "--save", "--out", "out", type=Path)
    p.add_argument("--no-draw", action="store_true", help="write detections.json only")
    p.add_argument("--json", action="store_true", help="print the detections as JSON instead of a summary")
    return p


def run(args: argparse.Namespace) -> int:
    sources = resolve_sources(args.source)  # fail on a bad source before loading the model
    if resolve_runtime(args.runtime, args.weights) == "onnx":
        model = open_detector(args.weights, args.model)
    else:
        model = create_model(args.model, checkpoint_path=args.weights).eval()
        if hasattr(model, "fuse"):
            model = model.fuse()  # the official predictor runs the fused model
    imgsz = args.imgsz if args.imgsz is not None else model_input_size(model, default=DEFAULT_IMGSZ)
    results = predict(model, sources, conf=args.conf, iou=args.iou, imgsz=imgsz, max_det=args.max_det,
                      classes=args.classes, agnostic=args.agnostic, batch=args.batch, progress=True)
    report = {"model": args.model, "weights": str(args.weights),
              "settings": {"imgsz": imgsz, "conf": args.conf, "iou": args.iou, "max_det": args.max_det,
                           "classes": args.classes, "agnostic": args.agnostic},
              "images": []}
    for det, src in zip(results, sources):
        entry = {"source": str(src), "height": det.image_hw[0], "width": det.image_hw[1],
                 "detections": det.to_list(decimals=4)}
        if not args.no_draw:
            out = _drawing_path(args.out, src, sources)
            det.save_drawing(out)
            entry["annotated"] = str(out)
        report["images"].append(entry)
    json_path = write_json_atomic(args.out / "detections.json", report)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for entry in report["images"]:
            counts: dict[str, int] = {}
            for d in entry["detections"]:
                counts[d["name"]] = counts.get(d["name"], 0) + 1
            summary = ", ".join(f"{n} {k}" for k, n in counts.items()) or "no detections"
            print(f"{entry['source']}: {summary}")
        print(f"saved {json_path}" + ("" if args.no_draw else f" and {len(results)} annotated image(s)"))
    return 0


def _drawing_path(folder: Path, src: Path, all_sources: list[Path]) -> Path:
    """Annotated image name: the source's name, disambiguated with its parent when names collide."""
    names = [s.name for s in all_sources]
    name = src.name if names.count(src.name) == 1 else f"{src.parent.name}_{src.name}"
    return folder / name
