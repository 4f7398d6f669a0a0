"""Train LeYOLO-Nano with the official fork's own trainer (ultralytics 8.1.4) from an effzoo recipe, score it.

The recipe (e.g. configs/leyolo_synthetic_ultralytics.yaml) is translated key for key into ``YOLO.train``
arguments; keys the fork hard-codes (EMA 0.9999 / tau 2000, clip 10, 100-iteration minimum warm-up, per-epoch
lambda) must hold the fork's values or the run is refused. The synthetic set is exported to YOLO format
(images symlinked, labels normalised), the fork trains in its own interpreter (``--official-python``, with
``--official-src`` first on its path), and its ``last.pt`` (EMA weights) is scored by pycocotools through
``zoo.val`` on the same 64 val images at the recipe's size, exactly as benchmarks/train_seeds.py scores
effzoo's runs.

    python benchmarks/official_train.py --official-src ~/LeYOLO --official-python ~/fork-venv/bin/python \\
        --config configs/leyolo_synthetic_ultralytics.yaml --seeds 0 --out runs/official
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any


REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import zoo  # noqa: E402
from zoo.core.fileio import write_text_atomic  # noqa: E402
from zoo.tasks.base.recipe import load_config  # noqa: E402
from zoo.tasks.detection.train_config import DetectionTrainConfig  # noqa: E402

# effzoo key -> ultralytics train argument (same meaning, same value)
SAME = ("epochs", "batch", "imgsz", "workers", "optimizer", "lr0", "lrf", "momentum", "weight_decay", "nbs",
        "warmup_epochs", "warmup_momentum", "warmup_bias_lr", "box", "cls", "dfl", "mosaic", "close_mosaic",
        "degrees", "translate", "scale", "shear", "hsv_h", "hsv_s", "hsv_v", "fliplr", "seed")
# effzoo keys the fork hard-codes: the recipe must hold these values
FIXED = {"ema_decay": 0.9999, "ema_tau": 2000.0, "grad_clip": 10.0, "warmup_steps": 100, "lr_per_epoch": True,
         "schedule": "ultralytics", "ema": True}

FORK_SNIPPET = """
import json, sys
sys.path.insert(0, sys.argv[1])
import numpy as np
import torch
if not hasattr(np, "trapz"):  # numpy 2 renamed it; ultralytics 8.1.4's metrics (final validation) call np.trapz
    np.trapz = np.trapezoid
from ultralytics import YOLO
torch.set_num_threads(int(sys.argv[4]))
model = YOLO(sys.argv[1] + "/ultralytics/cfg/cfg/leyolonano.yaml", task="detect")
model.train(**json.loads(sys.argv[2]))
print("SAVE_DIR " + str(model.trainer.save_dir))
"""


def fork_args(cfg: DetectionTrainConfig, data_yaml: Path, project: Path, name: str) -> dict[str, Any]:
    bad = {k: getattr(cfg, k) for k, v in FIXED.items() if getattr(cfg, k) != v}
    if bad:
        raise SystemExit(f"the fork hard-codes {', '.join(f'{k}={FIXED[k]!r}' for k in bad)}; the recipe has "
                         f"{', '.join(f'{k}={v!r}' for k, v in bad.items())}. Use a parity recipe.")
    args = {k: getattr(cfg, k) for k in SAME}
    args.update(cos_lr=cfg.lr_schedule == "cosine", data=str(data_yaml), project=str(project), name=name,
                exist_ok=True, device="cpu", amp=False, plots=False, val=False, deterministic=True,  # last.pt is scored below
                # ultralytics augmentations effzoo does not have, at their default 0 (flipud, mixup, copy-paste)
                flipud=0.0, mixup=0.0, copy_paste=0.0, perspective=0.0, verbose=False)
    return args


def export_yolo(dest: Path) -> Path:
    """The synthetic set's train and val splits as a YOLO folder (images symlinked); returns its data YAML."""
    from zoo.eval.datasets import load_dataset

    for split in ("train", "val"):
        data = load_dataset("synthetic", split)
        for sub in ("images", "labels"):
            (dest / split / sub).mkdir(parents=True, exist_ok=True)
        for i, rec in enumerate(data.records):
            link = dest / split / "images" / rec.path.name
            if not link.exists():
                link.symlink_to(rec.path.resolve())
            h, w = data.load_image(i).shape[:2]
            keep = ~rec.iscrowd
            lines = [f"{int(c)} {(x1 + x2) / 2 / w:.6f} {(y1 + y2) / 2 / h:.6f} {(x2 - x1) / w:.6f} {(y2 - y1) / h:.6f}"
                     for (x1, y1, x2, y2), c in zip(rec.boxes[keep], rec.labels[keep])]
            (dest / split / "labels" / f"{rec.path.stem}.txt").write_text("\n".join(lines) + "\n")
    names = "".join(f"  {i}: {n}\n" for i, n in enumerate(data.names))
    path = dest / "data.yaml"
    path.write_text(f"path: {dest}\ntrain: train/images\nval: val/images\nnames:\n{names}")
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--official-src", required=True, metavar="DIR", help="the LeYOLO fork's source (holds ultralytics/)")
    p.add_argument("--official-python", default=sys.executable, metavar="PY", help="interpreter with its dependencies")
    p.add_argument("--config", default=str(REPO / "configs" / "leyolo_synthetic_ultralytics.yaml"))
    p.add_argument("--seeds", default="0")
    p.add_argument("--out", default="runs/official")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)
    if not (Path(a.official_src) / "ultralytics").is_dir():
        print(f"--official-src {a.official_src} holds no ultralytics/ folder; point it at the LeYOLO fork's source.",
              file=sys.stderr)
        return 2
    out = Path(a.out).resolve()
    data_yaml = export_yolo(out / "yolo-synthetic")
    rows = []
    for seed in [int(s) for s in a.seeds.split(",")]:
        cfg = load_config(DetectionTrainConfig, a.config, {"model": "leyolo-nano", "seed": seed})
        last = out / f"seed{seed}" / "weights" / "last.pt"
        if not last.is_file():
            args = fork_args(cfg, data_yaml, out, f"seed{seed}")
            # torch >= 2.6 loads weights_only by default; the fork's final validation re-reads the best.pt it has
            # just written (a pickled model), so its own process is allowed the old default
            env = {**os.environ, "YOLO_OFFLINE": "1", "OMP_NUM_THREADS": str(a.threads),
                   "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"}
            done = subprocess.run([a.official_python, "-c", FORK_SNIPPET, a.official_src, json.dumps(args), "",
                                   str(a.threads)], env=env, text=True, capture_output=True)
            if done.returncode or not last.is_file():
                print(f"the fork's training failed: {(done.stderr.strip().splitlines() or ['?'])[-1]}", file=sys.stderr)
                return 1
        stats = zoo.val("leyolo-nano", "synthetic", weights=last, imgsz=cfg.imgsz, conf=cfg.conf, iou=cfg.iou,
                        max_det=cfg.max_det, backend="pycocotools")
        rows.append({"run": str(last), "seed": seed, "mAP50-95": float(stats["AP"]), "mAP50": float(stats["AP50"])})
        print(json.dumps(rows[-1]))
    if len(rows) > 1:
        m = [r["mAP50-95"] for r in rows]
        print(f"mAP50-95 {statistics.fmean(m):.4f} ± {statistics.stdev(m):.4f} (n={len(m)})")
    if a.json:
        write_text_atomic(Path(a.json), json.dumps({"rows": rows, "recipe": a.config}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
