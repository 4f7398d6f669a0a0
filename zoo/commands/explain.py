"""``zoo explain MODEL --weights W --source PATH --method M --out DIR`` -> ``zoo.explain``; overlays + JSON.

One command for both families. Detectors, per image: ``<name>_<method>.png`` (the map over the photo, the detections drawn), for targeted methods
``<name>_<method>_det<k>.png`` (one detection's map, that box drawn), and ``explain.json`` with each
map's summary statistics. Outputs never overwrite an input: a clash is refused before anything runs.
PI-GPT language models (``pi-gpt2-*``, ``--text``/``--corpus`` instead of ``--source``): the attention-entropy
maps per layer, head and query position (``attention_entropy.json``, ``attention_positions.png`` for the mean
over sequences, ``attention_first.png`` for the first one, ``entropy_heatmap.png`` for the head means).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from zoo.commands.entropy import load_sequences
from zoo.commands.options import add_nms_flags
from zoo.core.factory import create_model
from zoo.core.fileio import write_json_atomic
from zoo.core.registry import model_info
from zoo.models.pi_transformer.plots import plot_head_entropy
from zoo.tasks.detection.explain import DEFAULT_KERNEL, DEFAULT_METHOD, KERNELS, METHODS, explain
from zoo.tasks.detection.explain_draw import draw_explanation, save_png
from zoo.tasks.detection.explain_metrics import summary
from zoo.tasks.detection.predict import resolve_sources
from zoo.tasks.language.explain_attention import explain_attention, plot_position_entropy

EPILOG = """examples:
  zoo explain leyolo-nano --weights LeYOLONano.pt --source bus.jpg --out runs/explain
  zoo explain leyolo-nano --weights LeYOLONano.pt --source 'images/*.jpg' --method grad-cam --imgsz 480
  zoo explain leyolo-nano --weights LeYOLONano.pt --source bus.jpg --method kpca-cam --kernel sigmoid --layers model.34
  zoo explain pi-gpt2-tiny-sm-ln-g --weights runs/tiny/best.safetensors --corpus stdlib --out runs/explain-pi
methods (detectors): """ + ", ".join(f"{k} ({'per detection' if v.uses_target else 'class-agnostic'})"
                         for k, v in METHODS.items())


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("explain", help="saliency maps (KPCA-CAM, EigenCAM, Grad-CAM...) of detections; attention-entropy maps of PI-GPTs",
                       description="Class-activation maps of a detector through the grad-cam package "
                                   "(pip install 'effzoo[explain]'), of the detections zoo predict reports.",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="registry name, e.g. leyolo-nano")
    p.add_argument("--weights", required=True, help="checkpoint (.pt official or effzoo .safetensors)")
    p.add_argument("--source", default=None, help="detectors: image file, folder, or glob pattern (quote it)")
    text = p.add_mutually_exclusive_group()
    text.add_argument("--text", default=None, help="PI-GPT models: a text/code file to analyse")
    text.add_argument("--corpus", default=None, help="PI-GPT models: stdlib (default) | folder | list:FILE | hf:DIR | "
                                                     "languini:DIR; its held-out split is analysed")
    p.add_argument("--tokenizer", default=None, help="PI-GPT models: tokenizers JSON (unless byte-level)")
    p.add_argument("--seq-len", type=int, default=None, help="PI-GPT models: T (default: the context length)")
    p.add_argument("--max-seqs", type=int, default=16, help="PI-GPT models: sequences to average (default 16)")
    p.add_argument("--batch", type=int, default=8, help="PI-GPT models: sequences per forward (default 8)")
    p.add_argument("--method", default=DEFAULT_METHOD, choices=list(METHODS), metavar="METHOD",
                   help=f"saliency method (default {DEFAULT_METHOD}); one of {', '.join(METHODS)}")
    p.add_argument("--layers", nargs="+", default=None,
                   help="module names to explain (default: the layers feeding the head, averaged)")
    p.add_argument("--kernel", default=DEFAULT_KERNEL, choices=KERNELS,
                   help=f"KPCA-CAM kernel (default {DEFAULT_KERNEL}, grad-cam's own)")
    p.add_argument("--gamma", type=float, default=None, help="KPCA-CAM kernel coefficient (default 1 / channels)")
    p.add_argument("--imgsz", type=int, default=None, help="letterbox size (default: the model's input size)")
    add_nms_flags(p, conf=0.25)
    p.add_argument("--no-per-detection", action="store_true",
                   help="targeted methods: skip the one-map-per-detection images (one backward each)")
    p.add_argument("--out", type=Path, default=Path("runs/explain"),
                   help="folder for the PNGs and explain.json (default runs/explain)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    return p


def run(args: argparse.Namespace) -> int:
    card = model_info(args.model)  # unknown names fail here, with the closest ones
    if card.task != "detection":
        return _run_language(args, card.task)
    if args.text or args.corpus:
        raise ValueError(f"{args.model} is a detector: --text/--corpus are for PI-GPT models; pass --source.")
    if args.source is None:
        raise ValueError(f"{args.model} is a detector: pass --source IMAGE|FOLDER|GLOB.")
    if args.imgsz is not None and args.imgsz < 32:
        raise ValueError(f"--imgsz must be at least 32 pixels (got {args.imgsz}).")
    sources = resolve_sources(args.source)  # bad sources fail before the model loads
    names = _output_names(sources)
    targeted = METHODS[args.method].uses_target and not args.no_per_detection
    _refuse_overwriting_inputs(args.out, sources, names, args.method, targeted)
    model = create_model(args.model, checkpoint_path=args.weights).eval()
    results = explain(model, sources, method=args.method, layers=args.layers, kernel=args.kernel,
                      gamma=args.gamma, imgsz=args.imgsz, conf=args.conf, iou=args.iou, max_det=args.max_det,
                      per_detection=targeted, progress=True)
    report = {"model": args.model, "weights": str(args.weights), "method": args.method,
              "layers": list(results[0].layers) if results else [],
              "settings": {"imgsz": args.imgsz, "conf": args.conf, "iou": args.iou, "max_det": args.max_det,
                           "kernel": args.kernel if args.method == "kpca-cam" else None,
                           "gamma": args.gamma if args.method == "kpca-cam" else None},
              "images": []}
    for ex, src, stem in zip(results, sources, names):
        boxes = ex.detections.boxes.numpy()
        png = save_png(draw_explanation(ex.image, ex.map, ex.detections), args.out / f"{stem}_{args.method}.png")
        entry = {"source": str(src), "height": ex.map.shape[0], "width": ex.map.shape[1],
                 "seconds": round(ex.seconds, 4), "overlay": str(png), "map": summary(ex.map, boxes),
                 "detections": []}
        for k, det in enumerate(ex.detections.to_list(decimals=4)):
            if ex.box_maps is not None:
                path = save_png(draw_explanation(ex.image, ex.box_maps[k], ex.detections, keep=[k]),
                                args.out / f"{stem}_{args.method}_det{k}.png")
                det.update(overlay=str(path), map=summary(ex.box_maps[k], boxes[k:k + 1]))
            det["anchor"] = ex.anchors[k]
            entry["detections"].append(det)
        report["images"].append(entry)
    json_path = write_json_atomic(args.out / "explain.json", report)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for entry in report["images"]:
            m = entry["map"]
            print(f"{entry['source']}: {len(entry['detections'])} detections, {m['energy_in_boxes']:.0%} of the "
                  f"map inside them (boxes cover {m['box_area_share']:.0%}), {entry['seconds']:.2f} s")
        print(f"wrote {json_path} and the overlays in {args.out}", file=sys.stderr)
    return 0


def _output_names(sources: list[Path]) -> list[str]:
    """Output stem per image: the source's stem, with its parent folder when stems collide."""
    stems = [s.stem for s in sources]
    return [s.stem if stems.count(s.stem) == 1 else f"{s.parent.name}_{s.stem}" for s in sources]


def _refuse_overwriting_inputs(out: Path, sources: list[Path], names: list[str], method: str, targeted: bool) -> None:
    """Outputs never overwrite inputs: refuse when an output name (or its pattern) is one of the sources."""
    inputs = {s.resolve() for s in sources}
    planned = [out / "explain.json"] + [out / f"{n}_{method}.png" for n in names]
    for path in planned:
        if path.resolve() in inputs:
            raise ValueError(f"Output {path} would overwrite an input image; choose another --out folder.")
    if targeted:
        prefixes = {f"{n}_{method}_det" for n in names}
        for src in sources:
            if src.resolve().parent == out.resolve() and any(src.name.startswith(p) for p in prefixes):
                raise ValueError(f"Output pattern {out}/<image>_{method}_det<k>.png would overwrite input {src}; "
                                 "choose another --out folder.")


def _run_language(args: argparse.Namespace, task: str) -> int:
    """PI-GPT: attention-entropy maps per layer, head and position (PNG + JSON)."""
    if task != "language-modeling":
        raise ValueError(f"zoo explain knows detectors and PI-GPT language models; {args.model} is a {task} model.")
    if args.source is not None:
        raise ValueError(f"{args.model} is a language model: pass --text FILE or --corpus, not --source.")
    for flag in ("max_seqs", "batch"):
        if getattr(args, flag) <= 0:
            raise ValueError(f"--{flag.replace('_', '-')} must be a positive integer (got {getattr(args, flag)}).")
    model = create_model(args.model, checkpoint_path=args.weights)
    cfg = model.config
    seq_len = args.seq_len or cfg.context_length
    if not 2 <= seq_len <= cfg.context_length:
        raise ValueError(f"--seq-len must lie in 2..{cfg.context_length} (the context length), got {seq_len}.")
    tokens = load_sequences(args, cfg.vocab_size, seq_len)
    ex = explain_attention(model, tokens, batch_size=args.batch)
    data = {"model": args.model, "weights": str(args.weights), **ex.to_dict()}
    json_path = write_json_atomic(args.out / "attention_entropy.json", data)
    title = f"{args.model}: attention entropy / ln(i + 1), T={seq_len}"
    pngs = [plot_position_entropy(ex, args.out / "attention_positions.png", title=f"{title}, mean of {len(tokens)} seqs"),
            plot_position_entropy(ex, args.out / "attention_first.png", title=f"{title}, first sequence", which="first"),
            plot_head_entropy(ex.report, args.out / "entropy_heatmap.png", title=f"{args.model}: head entropy (T={seq_len})")]
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        L, H, _ = ex.position.shape
        print(f"model {args.model}: {ex.report.n_sequences} sequences of T={seq_len}, {L} layers x {H} heads; "
              f"entropy as a fraction of the causal ceiling ln(i + 1)")
        for layer in range(L):
            row = " ".join(f"{h['mean_fraction_of_ceiling']:.2f}" for h in data["heads"] if h["layer"] == layer)
            print(f"L{layer:<3d} {row}")
        print(f"wrote {json_path} and {', '.join(str(p) for p in pngs)}", file=sys.stderr)
    return 0
