"""How faithful are the saliency maps of ``zoo.explain`` on detections? KPCA-CAM vs EigenCAM vs Grad-CAM vs random.

Two settings, one command:

* the released LeYOLO-Nano (COCO) on the real photographs available offline: ``bus.jpg`` (shared
  reference) and scikit-image's astronaut, chelsea, coffee and motorcycle photographs;
* LeYOLO-Nano trained on the synthetic shapes set (``configs/leyolo_synthetic.yaml``; trained first when
  ``--synthetic-weights`` does not exist) on that set's val images, where the true boxes are exact.

Per image the explained detection is the top-scoring one. Deletion / insertion curves (RISE, with ROAD's
noisy linear imputation, ``zoo.tasks.detection.explain_metrics``): the detector's confidence in that box
(best same-class score among anchors with IoU >= 0.5) as the most salient pixels are removed / revealed,
at 0, 10, ..., 100 % of the pixels; their areas (AUC, deletion lower is better, insertion higher). On the
synthetic set also energy-in-box (share of the map inside the true boxes) and the pointing game (map peak
inside a true box), over all val images. ``random`` is a seeded coarse noise map (cells of 8 input pixels,
LeYOLO's finest stride, so it is as smooth as a CAM and not trivially imputed pixel by pixel).

    flock -s /tmp/effzoo-cpu.lock python benchmarks/explain_faithfulness.py            # README table
    python benchmarks/explain_faithfulness.py --settings real &                        # or the two halves
    python benchmarks/explain_faithfulness.py --settings synthetic                     # side by side, then
    python benchmarks/explain_faithfulness.py --report-only                            # table + plots
    python benchmarks/explain_faithfulness.py --quick --out /tmp/q --docs /tmp/q       # smoke run, ~2 min
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from tqdm import tqdm  # noqa: E402

import zoo  # noqa: E402
from zoo.core.fileio import atomic_path, write_json_atomic  # noqa: E402
from zoo.eval.datasets import synthetic_dataset  # noqa: E402
from zoo.eval.photos import real_photos  # noqa: E402
from zoo.eval.images import load_image  # noqa: E402
from zoo.tasks.detection.detections import Detections  # noqa: E402
from zoo.tasks.detection.explain import METHODS as zoo_methods  # noqa: E402
from zoo.tasks.detection.explain import explain  # noqa: E402
from zoo.tasks.detection.explain_draw import heat_overlay  # noqa: E402
from zoo.tasks.detection.explain_metrics import (DEFAULT_FRACTIONS, auc, box_mask, energy_in_boxes,  # noqa: E402
                                                 perturbation_curves, pointing_hit, random_map)
from zoo.tasks.detection.explain_targets import BoxConfidenceTarget, to_input_boxes, to_input_grid  # noqa: E402
from zoo.tasks.detection.preprocess import preprocess_batch  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" if (REPO.parent / "shared").is_dir() else Path("/work/shared")
# label -> (zoo.explain method, kwargs); "random" is the baseline map, not a CAM
METHODS: dict[str, tuple[str, dict]] = {
    "kpca-cam (sigmoid, default)": ("kpca-cam", {"kernel": "sigmoid"}),
    "kpca-cam (rbf)": ("kpca-cam", {"kernel": "rbf"}),
    "eigen-cam": ("eigen-cam", {}),
    "grad-cam": ("grad-cam", {}),
    "grad-cam++": ("grad-cam++", {}),
    "random": ("random", {}),
}
PHOTOS = ("astronaut", "chelsea", "coffee", "motorcycle_left")


def _top_detection(model, image: np.ndarray, imgsz: int) -> Detections | None:
    det = zoo.predict(model, image, imgsz=imgsz)[0]
    if len(det) == 0:
        return None
    return Detections(boxes=det.boxes[:1], scores=det.scores[:1], labels=det.labels[:1], names=det.names,
                      image_hw=det.image_hw, source=det.source)


def _maps(model, image: np.ndarray, top: Detections | None, label: str, imgsz: int, seed: int
          ) -> tuple[np.ndarray, np.ndarray, float]:
    """(map of all detections, map of the top one, seconds for the latter); gradient-free: the same map twice."""
    method, kwargs = METHODS[label]
    if method == "random":
        start = time.perf_counter()
        # cells of 8 input pixels (LeYOLO's finest stride), whatever the photo's own resolution
        ratio = min(imgsz / image.shape[0], imgsz / image.shape[1])
        m = random_map(image.shape[:2], seed=seed, cell=max(1, round(8 / ratio)))
        return m, m, time.perf_counter() - start
    ex = explain(model, image, method=method, imgsz=imgsz, boxes=None if top is None else [top],
                 per_detection=False, **kwargs)[0]
    if not zoo_methods[method].uses_target:
        return ex.map, ex.map, ex.seconds
    every = explain(model, image, method=method, imgsz=imgsz, per_detection=False, **kwargs)[0]
    return every.map, ex.map, ex.seconds


def _curves(model, image: np.ndarray, top: Detections, saliency: np.ndarray, imgsz: int, fractions) -> tuple:
    x, (info,) = preprocess_batch([image], imgsz, stride=32)
    target = BoxConfidenceTarget(to_input_boxes(top.boxes, info)[0].tolist(), int(top.labels[0]))

    def score(inp: torch.Tensor) -> float:
        with torch.no_grad():
            return float(target(model(inp)[0]))

    return perturbation_curves(score, x, to_input_grid(saliency, info), fractions=fractions)


def run_setting(name: str, model, images: list[np.ndarray], imgsz: int, fractions, curve_images: int,
                boxes: list[np.ndarray] | None) -> dict:
    """Every method on every image: time, curves (first ``curve_images`` with a detection), energy, pointing."""
    rows: dict[str, dict] = {m: {"seconds": [], "deletion": [], "insertion": [], "energy": [], "pointing": [],
                                 "chance": []} for m in METHODS}
    tops = [_top_detection(model, im, imgsz) for im in images]
    with_det = [i for i, t in enumerate(tops) if t is not None][:curve_images]
    example = {}
    work = [(label, i) for label in METHODS for i in range(len(images))]
    for label, i in tqdm(work, desc=name, unit="map"):
        torch.manual_seed(i)  # the imputer's noise
        every, saliency, seconds = _maps(model, images[i], tops[i], label, imgsz, seed=1000 + i)
        r = rows[label]
        r["seconds"].append(seconds)
        if with_det and i == with_det[0]:
            example[label] = saliency
        if boxes is not None:  # all true objects against the map of all detections
            r["energy"].append(energy_in_boxes(every, boxes[i]))
            r["pointing"].append(float(pointing_hit(every, boxes[i])))
            r["chance"].append(float(box_mask(every.shape, boxes[i]).mean()))
        if i in with_det:
            d, ins = _curves(model, images[i], tops[i], saliency, imgsz, fractions)
            r["deletion"].append(d)
            r["insertion"].append(ins)
    out = {"images": len(images), "curve_images": len(with_det), "imgsz": imgsz, "methods": {}}
    for label, r in rows.items():
        dele, ins = np.array(r["deletion"]), np.array(r["insertion"])
        entry = {"seconds_per_image": float(np.median(r["seconds"])),
                 "deletion_auc": float(np.mean([auc(fractions, c) for c in dele])) if len(dele) else None,
                 "insertion_auc": float(np.mean([auc(fractions, c) for c in ins])) if len(ins) else None,
                 "deletion_curve": dele.mean(0).tolist() if len(dele) else [],
                 "insertion_curve": ins.mean(0).tolist() if len(ins) else []}
        if boxes is not None:
            entry.update(energy_in_box=float(np.mean(r["energy"])), pointing=float(np.mean(r["pointing"])),
                         pointing_chance=float(np.mean(r["chance"])))
        out["methods"][label] = entry
    out["example"] = {"index": with_det[0] if with_det else None}
    return out, example, (images[with_det[0]], tops[with_det[0]]) if with_det else (None, None)


def _synthetic_weights(path: Path, quick: bool) -> Path:
    if path.is_file():
        return path
    print(f"training the synthetic Nano ({path} not found)...", file=sys.stderr)
    overrides = {"max_steps": 16} if quick else {}
    result = zoo.train("leyolo-nano", config=str(REPO / "configs" / "leyolo_synthetic.yaml"),
                       out=str(path.parent.parent), **overrides)
    return Path(result.best or result.last)


def plot(results: dict, examples: dict, out: Path) -> list[Path]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    paths = []
    fig = Figure(figsize=(11, 7.5))
    FigureCanvasAgg(fig)
    for row, (setting, res) in enumerate(results.items()):
        for col, kind in enumerate(("deletion", "insertion")):
            ax = fig.add_subplot(2, 2, 2 * row + col + 1)
            for label, m in res["methods"].items():
                if m[f"{kind}_curve"]:
                    ax.plot(res["fractions"], m[f"{kind}_curve"], marker=".", label=f"{label} "
                            f"(AUC {m[f'{kind}_auc']:.3f})", linestyle="--" if label == "random" else "-")
            ax.set_title(f"{setting}: {kind} ({'lower' if kind == 'deletion' else 'higher'} is better)", fontsize=9)
            ax.set_xlabel("fraction of pixels " + ("removed (most salient first)" if kind == "deletion"
                                                   else "revealed (most salient first)"), fontsize=8)
            ax.set_ylabel("confidence in the explained box", fontsize=8)
            ax.legend(fontsize=6)
    fig.tight_layout()
    path = out / "explain_curves.png"
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    paths.append(path)
    for setting, (maps, (image, top)) in examples.items():
        if image is None:
            continue
        fig = Figure(figsize=(2.6 * (len(maps) + 1), 3.2))
        FigureCanvasAgg(fig)
        ax = fig.add_subplot(1, len(maps) + 1, 1)
        ax.imshow(top.draw(image))
        ax.set_title("top detection", fontsize=8)
        ax.axis("off")
        for k, (label, saliency) in enumerate(maps.items()):
            ax = fig.add_subplot(1, len(maps) + 1, k + 2)
            ax.imshow(heat_overlay(image, saliency))
            ax.set_title(label, fontsize=8)
            ax.axis("off")
        fig.tight_layout()
        path = out / f"explain_maps_{setting}.png"
        with atomic_path(path, suffix=".png") as tmp:
            fig.savefig(tmp, format="png", dpi=110)
        paths.append(path)
    return paths


def table(results: dict) -> str:
    real, syn = results["real photos"], results["synthetic val"]
    lines = ["| method | real: deletion AUC ↓ | real: insertion AUC ↑ | real: s / map | synthetic: deletion AUC ↓ | "
             "synthetic: insertion AUC ↑ | synthetic: energy in box ↑ | synthetic: pointing ↑ | synthetic: s / map |",
             "|---|---|---|---|---|---|---|---|---|"]
    for label in METHODS:
        a, b = real["methods"][label], syn["methods"][label]
        lines.append(f"| {label} | {a['deletion_auc']:.3f} | {a['insertion_auc']:.3f} | {a['seconds_per_image']:.2f} | "
                     f"{b['deletion_auc']:.3f} | {b['insertion_auc']:.3f} | {b['energy_in_box']:.3f} | "
                     f"{b['pointing']:.2f} | {b['seconds_per_image']:.2f} |")
    chance = syn["methods"]["random"]
    lines.append(f"\nBoxes cover {chance['pointing_chance']:.3f} of the synthetic pixels (chance level of both "
                 "energy in box and pointing).")
    return "\n".join(lines)


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


SETTINGS = ("real", "synthetic")
TITLES = {"real": "real photos", "synthetic": "synthetic val"}


def _measure(setting: str, args: argparse.Namespace, fractions) -> None:
    """Run one setting and write its numbers (JSON) and example maps (NPZ) under ``--out``."""
    start = time.perf_counter()
    if setting == "real":
        model = zoo.create_model("leyolo-nano", checkpoint_path=args.weights).eval()
        images = [load_image(args.bus)] + [ph.image for ph in real_photos(PHOTOS[:1] if args.quick else PHOTOS)]
        res, ex, (image, top) = run_setting(TITLES[setting], model, images, args.imgsz_real, fractions,
                                            len(images), None)
        weights = args.weights
    else:
        weights = _synthetic_weights(args.synthetic_weights, args.quick)
        model = zoo.create_model("leyolo-nano", checkpoint_path=weights).eval()
        data = synthetic_dataset("val")
        n = 6 if args.quick else min(args.synthetic_images, len(data))
        images = [data.load_image(i) for i in range(n)]
        res, ex, (image, top) = run_setting(TITLES[setting], model, images, args.imgsz_synthetic, fractions,
                                            3 if args.quick else args.curve_images,
                                            [data.records[i].boxes for i in range(n)])
    res.update(fractions=list(fractions), weights=str(weights), wall_s=round(time.perf_counter() - start, 1))
    write_json_atomic(args.out / f"{setting}.json", res)
    with atomic_path(args.out / f"{setting}_example.npz", suffix=".npz") as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, image=image, box=top.boxes.numpy(), label=top.labels.numpy(),
                                score=top.scores.numpy(), labels=np.array(list(ex)),
                                maps=np.stack([ex[k] for k in ex]))


def _load(setting: str, out: Path) -> tuple[dict, tuple]:
    res = json.loads((out / f"{setting}.json").read_text())
    z = np.load(out / f"{setting}_example.npz")
    top = Detections(boxes=torch.from_numpy(z["box"]), scores=torch.from_numpy(z["score"]),
                     labels=torch.from_numpy(z["label"]), names={}, image_hw=tuple(z["image"].shape[:2]))
    return res, ({str(k): m for k, m in zip(z["labels"], z["maps"])}, (z["image"], top))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--weights", type=Path, default=SHARED / "reference" / "leyolo" / "LeYOLONano.pt")
    p.add_argument("--bus", type=Path, default=SHARED / "reference" / "leyolo" / "bus.jpg")
    p.add_argument("--synthetic-weights", type=Path, default=REPO / "runs" / "nano-synth" / "weights" / "best.safetensors")
    p.add_argument("--imgsz-real", type=int, default=320,
                   help="letterbox size for the photos (320: the ROAD imputation at 640 costs ~10 s per step)")
    p.add_argument("--imgsz-synthetic", type=int, default=160, help="the synthetic recipe's training size")
    p.add_argument("--synthetic-images", type=int, default=64, help="val images for energy / pointing")
    p.add_argument("--curve-images", type=int, default=12, help="synthetic val images with deletion/insertion curves")
    p.add_argument("--settings", nargs="+", choices=SETTINGS, default=list(SETTINGS),
                   help="what to measure now (the report covers every setting measured in --out)")
    p.add_argument("--report-only", action="store_true", help="only rebuild the table and plots from --out")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--quick", action="store_true", help="2 photos, 6 synthetic images, 3 fractions")
    p.add_argument("--out", type=Path, default=REPO / "runs" / "explain_faithfulness")
    p.add_argument("--docs", type=Path, default=REPO / "docs", help="where the PNGs for the README go")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    fractions = (0.0, 0.5, 1.0) if args.quick else DEFAULT_FRACTIONS
    args.out.mkdir(parents=True, exist_ok=True)
    if not args.report_only:
        for setting in args.settings:
            _measure(setting, args, fractions)
    missing = [s for s in SETTINGS if not (args.out / f"{s}.json").is_file()]
    if missing:
        print(f"measured {', '.join(args.settings)}; run --settings {' '.join(missing)} for the full report",
              file=sys.stderr)
        return 0
    results, examples = {}, {}
    for setting in SETTINGS:
        results[TITLES[setting]], examples[setting] = _load(setting, args.out)
    meta = {"command": " ".join(sys.argv), "cpu": _cpu_name(), "python": platform.python_version(),
            "torch": torch.__version__, "threads": args.threads, "photos": ["bus.jpg", *PHOTOS]}
    write_json_atomic(args.out / "results.json", {"meta": meta, "results": results})
    pngs = plot(results, examples, args.docs)
    print(table(results))
    walls = ", ".join(f"{k} {v['wall_s']} s" for k, v in results.items())
    print(f"\n{meta['cpu']}, torch {meta['torch']}, {args.threads} thread(s); wall {walls}; "
          f"wrote {args.out / 'results.json'} and {', '.join(str(p) for p in pngs)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
