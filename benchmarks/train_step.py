"""Seconds per training step of LeYOLO-Nano (CPU by default), and of ultralytics' YOLO11n on the same data.

A step is what the engine does per iteration: forward, v8 loss, backward, gradient clipping, SGD step
and EMA update. Batches are augmented with the COCO recipe (mosaic, affine, HSV, flip) from the synthetic
set and built before timing, so data loading is reported separately and not mixed into the step time.
ultralytics is an optional peer: when it is installed, YOLO11n (built from its YAML, nothing downloaded)
runs the same batches through ultralytics' own loss, with the same optimizer groups, in the same process.

    python benchmarks/train_step.py                    # Nano at 320, batch 16, 10 timed steps
    python benchmarks/train_step.py --imgsz 640 --batch 8 --steps 5 --json out.json
"""
from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from zoo.engine.ema import ModelEMA  # noqa: E402
from zoo.engine.optim import build_optimizer, param_groups  # noqa: E402
from zoo.tasks.base.recipe import load_config  # noqa: E402
from zoo.tasks.detection.train_config import DetectionTrainConfig  # noqa: E402
from zoo.tasks.detection.train_data import DetectionTrainSet, collate  # noqa: E402


def make_batches(cfg: DetectionTrainConfig, n: int) -> tuple[list[tuple[torch.Tensor, torch.Tensor]], float, int]:
    """``n`` augmented batches of the synthetic set; returns them, the median seconds per batch, and nc."""
    from zoo.eval.datasets import load_dataset

    data = load_dataset("synthetic", "train")
    ds = DetectionTrainSet(data, cfg, cfg.epochs)
    batches, seconds = [], []
    for b in range(n):
        t = time.perf_counter()
        batches.append(collate([ds[(0, (b * cfg.batch + i) % len(ds))] for i in range(cfg.batch)]))
        seconds.append(time.perf_counter() - t)
    return batches, statistics.median(seconds), data.num_classes


def time_steps(step: Callable[[tuple[torch.Tensor, torch.Tensor]], None], batches: list, warmup: int) -> list[float]:
    for batch in batches[:warmup]:
        step(batch)
    times = []
    for batch in batches[warmup:]:
        t = time.perf_counter()
        step(batch)
        times.append(time.perf_counter() - t)
    return times


def sgd_for(model: torch.nn.Module, cfg: DetectionTrainConfig) -> torch.optim.Optimizer:
    return build_optimizer(param_groups(model, cfg.weight_decay), "SGD", cfg.lr0, cfg.momentum)


def leyolo_step(nc: int, cfg: DetectionTrainConfig) -> Callable:
    from zoo.models.leyolo.loss import DetectionLoss

    import zoo

    model = zoo.create_model("leyolo-nano", num_classes=nc).train()
    loss_fn = DetectionLoss(nc, [8, 16, 32], box=cfg.box, cls=cfg.cls, dfl=cfg.dfl)
    opt, ema = sgd_for(model, cfg), ModelEMA(model)

    def step(batch: tuple[torch.Tensor, torch.Tensor]) -> None:
        images, targets = batch
        loss, _ = loss_fn(model(images.float() / 255), targets)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=cfg.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        ema.update(model)
    return step


def ultralytics_step(nc: int, cfg: DetectionTrainConfig) -> Callable | None:
    """YOLO11n built from YAML with ultralytics' v8 loss; None (with a note) when ultralytics is missing."""
    try:
        from ultralytics.cfg import get_cfg
        from ultralytics.nn.tasks import DetectionModel
    except ImportError:
        print("note: ultralytics is not installed; skipping the YOLO11n peer (pip install ultralytics)",
              file=sys.stderr)
        return None
    model = DetectionModel("yolo11n.yaml", nc=nc, verbose=False).train()
    model.args = get_cfg()  # default hyperparameters: box 7.5, cls 0.5, dfl 1.5, as ours
    opt, ema = sgd_for(model, cfg), ModelEMA(model)

    def step(batch: tuple[torch.Tensor, torch.Tensor]) -> None:
        images, targets = batch
        s = images.shape[-1]
        xyxy = targets[:, 2:6] / s
        xywh = torch.cat([(xyxy[:, :2] + xyxy[:, 2:]) / 2, xyxy[:, 2:] - xyxy[:, :2]], 1)
        loss, _ = model.loss({"img": images.float() / 255, "batch_idx": targets[:, 0], "cls": targets[:, 1:2],
                              "bboxes": xywh})
        loss.sum().backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=cfg.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        ema.update(model)
    return step


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--imgsz", type=int, default=320)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--steps", type=int, default=10, help="timed steps (median reported)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    p.add_argument("--json", default=None, help="also write the results as JSON here")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = load_config(DetectionTrainConfig, REPO / "configs" / "leyolo_coco.yaml",
                      {"imgsz": args.imgsz, "batch": args.batch, "data": "synthetic"})
    batches, data_s, nc = make_batches(cfg, args.warmup + args.steps)
    rows: list[dict[str, Any]] = []
    for name, factory in (("leyolo-nano (effzoo)", leyolo_step), ("yolo11n (ultralytics)", ultralytics_step)):
        step = factory(nc, cfg)
        if step is None:
            continue
        times = time_steps(step, batches, args.warmup)
        rows.append({"model": name, "median_s": statistics.median(times), "min_s": min(times), "max_s": max(times)})
    base = rows[0]["median_s"]
    for row in rows:
        row["ratio_vs_leyolo"] = row["median_s"] / base
    info = {"device": "cpu", "cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
            "torch": torch.__version__, "dtype": "float32", "batch": args.batch, "imgsz": args.imgsz,
            "steps": args.steps, "data_s_per_batch": data_s}
    print(f"train step, CPU fp32, batch {args.batch} at {args.imgsz}, median of {args.steps} steps "
          f"(torch {torch.__version__}, {info['threads']} threads); data prep {data_s:.3f} s/batch (not timed)")
    print("| model | s/step (median) | min | max | ratio vs LeYOLO-Nano |")
    print("|---|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['model']} | {r['median_s']:.3f} | {r['min_s']:.3f} | {r['max_s']:.3f} | {r['ratio_vs_leyolo']:.2f} |")
    if args.json:
        from zoo.core.fileio import write_json_atomic

        write_json_atomic(args.json, {"info": info, "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
