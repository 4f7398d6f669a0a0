"""``zoo predict MODEL --weights W --source PATH|DIR|GLOB`` -> ``zoo.predict``; annotated images + one JSON."""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from zoo.commands.options import RUNTIMES, add_nms_flags, add_runtime_flag, deprecated_alias
from zoo.core.factory import create_model
from zoo.core.fileio import check_output_path, write_json_atomic
from zoo.core.sizes import model_input_size
from zoo.eval.images import image_size
from zoo.runtime.exported import open_detector, resolve_runtime
from zoo.tasks.detection.predict import DEFAULT_IMGSZ, predict, resolve_sources

EPILOG = """examples:
  zoo predict leyolo-nano --weights LeYOLONano.pt --source bus.jpg --out runs/predict
  zoo predict leyolo-nano --weights LeYOLONano.pt --source 'images/*.jpg' --conf 0.4 --imgsz 480
  zoo predict leyolo-nano --weights LeYOLONano.pt --source images/ --json
  zoo predict leyolo-nano --weights runs/export/leyolo-nano-cpu.onnx --source bus.jpg --runtime onnx

Annotated images keep their path relative to the sources' common folder (never overwriting each other),
and an --out folder that holds a source image is refused.
"""
DRAWING_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")  # written in their own format


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
    check_output_path(args.out, folder=True, what="--out")
    drawings = {} if args.no_draw else drawing_paths(args.out, sources)
    for src in sources:  # every header read before any work: one bad file must not abort a run midway
        image_size(src)
    if resolve_runtime(args.runtime, args.weights) != "torch":  # an exported .onnx / .xml file
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
            out = drawings[src]
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


def drawing_paths(folder: Path, sources: list[Path]) -> dict[Path, Path]:
    """Annotated image path of every source: its path relative to the sources' common folder, under ``folder``.

    Keeping the relative path means two sources never share an output (``a/x/img.jpg`` and ``b/x/img.jpg``
    stay apart). A folder that holds a source is refused: the drawing would replace the user's image.

    Raises:
        ValueError: ``folder`` is, or contains, the folder of a source.
    """
    out = folder.resolve()
    resolved = {src: src.resolve() for src in sources}
    for src, path in resolved.items():
        if path.parent == out or out in path.parents:
            raise ValueError(f"--out {folder} contains the source image {src}; the annotated copy would overwrite "
                             "it. Choose an output folder outside the sources.")
    parents = [p.parent for p in resolved.values()]
    root = Path(os.path.commonpath(parents)) if len(set(parents)) > 1 else parents[0]
    paths = {}
    for src, path in resolved.items():
        rel = path.relative_to(root)
        if rel.suffix.lower() not in DRAWING_SUFFIXES:  # .gif/.tif/.jfif: written as PNG, name kept whole
            rel = rel.with_name(rel.name + ".png")
        paths[src] = folder / rel
    return paths
