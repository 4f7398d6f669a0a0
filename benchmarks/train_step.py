"""Seconds per training step of LeYOLO-Nano (CPU by default), and of ultralytics' YOLO11n on the same data.

A step is what the engine does per iteration: forward, v8 loss, backward, gradient clipping, SGD step
and EMA update. Batches are augmented with the COCO recipe (mosaic, affine, HSV, flip) from the synthetic
set and built before timing, so data loading is reported separately and not mixed into the step time.
ultralytics is an optional peer: when it is installed, YOLO11n (built from its YAML, nothing downloaded)
runs the same batches through ultralytics' own loss, with the same optimizer groups, in the same process.

    python benchmarks/train_step.py                    # Nano at 320, batch 16, 10 timed steps
    python benchmarks/train_step.py --imgsz 640 --batch 8 --steps 5 --json out.json
    python benchmarks/train_step.py --profile          # where effzoo's step time goes (phases, channels_last)
    python benchmarks/train_step.py --official-src ~/LeYOLO --official-python ~/fork-venv/bin/python

``--profile`` splits effzoo's step into data (augment + collate, in-process, with and without mosaic),
forward, assigner, rest of the loss, backward, clip + optimizer, EMA, and times a channels_last step.
``--official-src DIR`` (optional peer: the LeYOLO fork's source, ultralytics 8.1.4, with an interpreter
that has its dependencies) times whole *trainer* iterations, data loading included, of the fork's own
``YOLO.train`` (benchmarks/official_train_step.py) and of effzoo's ``Trainer`` with the parity recipe
(configs/leyolo_synthetic_ultralytics.yaml: same optimizer, accumulation, EMA, augmentation) on the same
synthetic images, effzoo with data loading in-process (workers 0, as ultralytics on CPU) and in a worker.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

# --clock wall (default): perf_counter. --clock cpu: this process's CPU seconds (process_time), which a
# machine shared with other jobs inflates far less than wall time; meaningful with --threads 1 and
# in-process data (a worker's CPU is not counted).
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
CLOCK = time.perf_counter

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
        t = CLOCK()
        batches.append(collate([ds[(0, (b * cfg.batch + i) % len(ds))] for i in range(cfg.batch)]))
        seconds.append(CLOCK() - t)
    return batches, statistics.median(seconds), data.num_classes


def time_steps(step: Callable[[tuple[torch.Tensor, torch.Tensor]], None], batches: list, warmup: int) -> list[float]:
    for batch in batches[:warmup]:
        step(batch)
    times = []
    for batch in batches[warmup:]:
        t = CLOCK()
        step(batch)
        times.append(CLOCK() - t)
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


class _Timed:
    """Wraps a callable and adds its wall time to ``acc[key]`` (the assigner inside the loss)."""

    def __init__(self, fn: Callable, acc: dict[str, float], key: str) -> None:
        self.fn, self.acc, self.key = fn, acc, key

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        t = CLOCK()
        out = self.fn(*args, **kwargs)
        self.acc[self.key] = self.acc.get(self.key, 0.0) + CLOCK() - t
        return out


def profile_leyolo(nc: int, cfg: DetectionTrainConfig, batches: list, warmup: int,
                   channels_last: bool = False) -> dict[str, float]:
    """Median seconds of each phase of effzoo's step (SGD, clip, EMA, as ``leyolo_step``)."""
    from zoo.models.leyolo.loss import DetectionLoss

    import zoo

    model = zoo.create_model("leyolo-nano", num_classes=nc).train()
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    loss_fn = DetectionLoss(nc, [8, 16, 32], box=cfg.box, cls=cfg.cls, dfl=cfg.dfl)
    acc: dict[str, float] = {}
    loss_fn.assigner = _Timed(loss_fn.assigner, acc, "assigner")
    opt, ema = sgd_for(model, cfg), ModelEMA(model)
    phases: dict[str, list[float]] = {k: [] for k in ("forward", "assigner", "loss (rest)", "backward",
                                                       "clip + optimizer", "EMA", "step")}
    for n, (images, targets) in enumerate(batches):
        acc.clear()
        t0 = CLOCK()
        feats = model((images.float() / 255).contiguous(memory_format=fmt))
        t1 = CLOCK()
        loss, _ = loss_fn(feats, targets)
        t2 = CLOCK()
        loss.backward()
        t3 = CLOCK()
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=cfg.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        t4 = CLOCK()
        ema.update(model)
        t5 = CLOCK()
        if n < warmup:
            continue
        for key, value in (("forward", t1 - t0), ("assigner", acc["assigner"]),
                           ("loss (rest)", t2 - t1 - acc["assigner"]), ("backward", t3 - t2),
                           ("clip + optimizer", t4 - t3), ("EMA", t5 - t4), ("step", t5 - t0)):
            phases[key].append(value)
    return {k: statistics.median(v) for k, v in phases.items()}


def print_profile(args: argparse.Namespace, cfg: DetectionTrainConfig) -> dict[str, Any]:
    batches, data_s, nc = make_batches(cfg, args.warmup + args.steps)
    no_mosaic = load_config(DetectionTrainConfig, REPO / "configs" / "leyolo_coco.yaml",
                            {"imgsz": args.imgsz, "batch": args.batch, "data": "synthetic", "mosaic": 0.0})
    _, data_plain_s, _ = make_batches(no_mosaic, min(4, args.warmup + args.steps))
    phases = profile_leyolo(nc, cfg, batches, args.warmup)
    cl = profile_leyolo(nc, cfg, batches, args.warmup, channels_last=True)
    step = phases["step"]
    print(f"effzoo step profile, CPU fp32, batch {args.batch} at {args.imgsz}, median of {args.steps} steps "
          f"({torch.get_num_threads()} threads, {args.clock} seconds)")
    print("| phase | s/step | share of step + data |")
    print("|---|---:|---:|")
    total = step + data_s
    rows = [("data: mosaic + affine + HSV + flip + collate (in-process)", data_s),
            *((k, v) for k, v in phases.items() if k != "step")]
    for name, value in rows:
        print(f"| {name} | {value:.3f} | {100 * value / total:.0f} % |")
    print(f"| step (forward .. EMA) | {step:.3f} | {100 * step / total:.0f} % |")
    print(f"| data without mosaic (letterbox + affine + HSV + flip) | {data_plain_s:.3f} | |")
    print(f"| step with channels_last | {cl['step']:.3f} | {cl['step'] / step:.2f}x of contiguous |")
    return {"data_s": data_s, "data_no_mosaic_s": data_plain_s, "phases": phases, "channels_last": cl}


def export_yolo(dest: Path) -> Path:
    """The synthetic train split as a YOLO-format folder (symlinked images, normalised labels); its data YAML."""
    from zoo.eval.datasets import load_dataset

    data = load_dataset("synthetic", "train")
    for sub in ("images", "labels"):
        (dest / "train" / sub).mkdir(parents=True, exist_ok=True)
    for i, rec in enumerate(data.records):
        link = dest / "train" / "images" / rec.path.name
        if not link.exists():
            link.symlink_to(rec.path.resolve())
        h, w = data.load_image(i).shape[:2]
        lines = []
        for (x1, y1, x2, y2), c in zip(rec.boxes[~rec.iscrowd], rec.labels[~rec.iscrowd]):
            lines.append(f"{int(c)} {(x1 + x2) / 2 / w:.6f} {(y1 + y2) / 2 / h:.6f} {(x2 - x1) / w:.6f} "
                         f"{(y2 - y1) / h:.6f}")
        (dest / "train" / "labels" / f"{rec.path.stem}.txt").write_text("\n".join(lines) + "\n")
    names = "".join(f"  {i}: {n}\n" for i, n in enumerate(data.names))
    yaml_path = dest / "data.yaml"
    yaml_path.write_text(f"path: {dest}\ntrain: train/images\nval: train/images\nnames:\n{names}")
    return yaml_path


def effzoo_trainer_seconds(imgsz: int, batch: int, iters: int, workers: int,
                           channels_last: bool = False) -> list[float]:
    """Per-iteration seconds of effzoo's Trainer, parity recipe, val/plots off, stopped after ``iters``."""
    import zoo
    from zoo.tasks.base.training import StopTraining

    stamps: list[float] = []

    def on_step_end(trainer: Any) -> None:
        stamps.append(CLOCK())
        if trainer.iteration >= iters:
            raise StopTraining

    with tempfile.TemporaryDirectory() as tmp:
        zoo.train("leyolo-nano", config=REPO / "configs" / "leyolo_synthetic_ultralytics.yaml", imgsz=imgsz,
                  batch=batch, workers=workers, val=False, plots=False, device="cpu", out=f"{tmp}/run",
                  channels_last=channels_last,
                  callbacks={"on_train_start": [lambda tr: stamps.append(CLOCK())],
                             "on_step_end": [on_step_end]})
    return [b - a for a, b in zip(stamps, stamps[1:])]


def official_trainer_seconds(args: argparse.Namespace, data_yaml: Path) -> tuple[list[float], str] | None:
    """The fork's per-iteration seconds from benchmarks/official_train_step.py, or None (with a note)."""
    cmd = [args.official_python, str(REPO / "benchmarks" / "official_train_step.py"), "--src", args.official_src,
           "--data", str(data_yaml), "--imgsz", str(args.imgsz), "--batch", str(args.batch),
           "--iters", str(args.warmup + args.steps), "--threads", str(torch.get_num_threads()), "--clock", args.clock]
    env = {**os.environ, "YOLO_OFFLINE": "1", "PYTHONPATH": args.official_src}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
    if done.returncode or not lines:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        print(f"note: the official fork's trainer did not run ({tail}); skipping it", file=sys.stderr)
        return None
    out = json.loads(lines[-1])
    return out["seconds"], out["ultralytics"]


def compare_trainers(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Mean s/iteration (after warm-up) of the fork's trainer and effzoo's, same images, size, batch, threads."""
    rows: list[dict[str, Any]] = []
    n = args.warmup + args.steps

    def add(name: str, seconds: list[float]) -> None:
        timed = seconds[args.warmup:n]
        rows.append({"trainer": name, "mean_s": statistics.fmean(timed), "median_s": statistics.median(timed),
                     "iters": len(timed)})

    with tempfile.TemporaryDirectory() as tmp:
        if args.official_src:
            got = official_trainer_seconds(args, export_yolo(Path(tmp) / "yolo"))
            if got is not None:
                add(f"official fork (ultralytics {got[1]}), in-process data", got[0])
    for workers, channels_last in ((0, False), (1, False), (0, True)):
        note = " (its CPU not counted)" if workers and args.clock == "cpu" else ""
        note += ", channels_last" if channels_last else ""
        add(f"effzoo Trainer, parity recipe, workers {workers}{note}",
            effzoo_trainer_seconds(args.imgsz, args.batch, n, workers, channels_last))
    base = rows[0]["mean_s"]
    print(f"\ntrainer iterations, CPU fp32, batch {args.batch} at {args.imgsz}, mean of {args.steps} iterations "
          f"after {args.warmup} ({torch.get_num_threads()} threads, data loading included, {args.clock} seconds)")
    print(f"| trainer | s/iteration (mean) | median | ratio vs {rows[0]['trainer'].split(',')[0]} |")
    print("|---|---:|---:|---:|")
    for r in rows:
        r["ratio"] = r["mean_s"] / base
        print(f"| {r['trainer']} | {r['mean_s']:.3f} | {r['median_s']:.3f} | {r['ratio']:.2f} |")
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--imgsz", type=int, default=320)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--steps", type=int, default=10, help="timed steps (median reported)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    p.add_argument("--json", default=None, help="also write the results as JSON here")
    p.add_argument("--clock", choices=tuple(CLOCKS), default="wall",
                   help="wall seconds, or this process's CPU seconds (robust to other jobs; use --threads 1)")
    p.add_argument("--profile", action="store_true", help="split effzoo's step into phases (and channels_last)")
    p.add_argument("--official-src", default=None, metavar="DIR",
                   help="the LeYOLO fork's source (ultralytics 8.1.4): also time its trainer against effzoo's")
    p.add_argument("--official-python", default=sys.executable, metavar="PY",
                   help="interpreter with the fork's dependencies (default: this one)")
    p.add_argument("--trainer", action="store_true", help="time effzoo's trainer iterations (workers 0 and 1)")
    p.add_argument("--no-step", action="store_true", help="skip the prebuilt-batch step table")
    args = p.parse_args(argv)
    global CLOCK
    CLOCK = CLOCKS[args.clock]
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = load_config(DetectionTrainConfig, REPO / "configs" / "leyolo_coco.yaml",
                      {"imgsz": args.imgsz, "batch": args.batch, "data": "synthetic"})
    extra: dict[str, Any] = {}
    if args.profile:
        extra["profile"] = print_profile(args, cfg)
    if args.official_src is not None or args.trainer:
        extra["trainers"] = compare_trainers(args)
    if args.no_step:
        if args.json:
            from zoo.core.fileio import write_json_atomic

            write_json_atomic(args.json, extra)
        return 0
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

        write_json_atomic(args.json, {"info": info, "rows": rows, **extra})
    return 0


if __name__ == "__main__":
    sys.exit(main())
