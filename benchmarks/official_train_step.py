"""Seconds per iteration of the official LeYOLO fork's own trainer (ultralytics 8.1.4), for train_step.py.

Run by ``benchmarks/train_step.py --official-src DIR`` in a separate interpreter (the fork must not be
importable next to a stock ultralytics), with ``DIR`` first on ``sys.path``. It trains the fork's
LeYOLO-Nano YAML with ``YOLO(...).train`` on a YOLO-format export of effzoo's synthetic set, val and plots
off, and records ``time.perf_counter()`` (or ``process_time``) at every ``on_train_batch_end``; it stops after the requested
iterations and prints one JSON line: the per-iteration seconds and the settings.

    python benchmarks/official_train_step.py --src /path/to/LeYOLO --data DIR/data.yaml --imgsz 320 --iters 12
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time


class _Enough(Exception):
    """Raised from the batch callback once enough iterations are timed."""


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--src", required=True, help="the fork's source folder (holds ultralytics/)")
    p.add_argument("--data", required=True, help="YOLO data YAML")
    p.add_argument("--imgsz", type=int, default=320)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--iters", type=int, default=12, help="iterations to run (the first ones are warm-up)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--clock", choices=("wall", "cpu"), default="wall", help="perf_counter or process_time")
    p.add_argument("--model-yaml", default="ultralytics/cfg/cfg/leyolonano.yaml", help="relative to --src")
    a = p.parse_args()
    sys.path.insert(0, a.src)
    import torch
    import ultralytics
    from ultralytics import YOLO

    torch.set_num_threads(a.threads)
    clock = time.process_time if a.clock == "cpu" else time.perf_counter
    stamps: list[float] = []

    def on_batch_end(trainer) -> None:
        stamps.append(clock())
        if len(stamps) > a.iters:
            raise _Enough

    def on_train_start(trainer) -> None:
        stamps.append(clock())  # the loop starts right after; first interval = iteration 0

    model = YOLO(f"{a.src}/{a.model_yaml}", task="detect")
    model.add_callback("on_train_start", on_train_start)
    model.add_callback("on_train_batch_end", on_batch_end)
    with tempfile.TemporaryDirectory() as tmp:
        try:  # the side-by-side settings (AdamW, warm-up 1 epoch, mosaic, HSV/translate/scale/flip)
            model.train(data=a.data, imgsz=a.imgsz, batch=a.batch, epochs=8, workers=0, device="cpu", val=False,
                        plots=False, amp=False, optimizer="AdamW", lr0=0.002, lrf=0.05, warmup_epochs=1.0,
                        close_mosaic=3, translate=0.1, scale=0.3, seed=0, project=tmp, name="fork", exist_ok=True,
                        verbose=False)
        except _Enough:
            pass
    seconds = [b - a_ for a_, b in zip(stamps, stamps[1:])]
    print(json.dumps({"seconds": seconds, "ultralytics": ultralytics.__version__, "threads": torch.get_num_threads(),
                      "imgsz": a.imgsz, "batch": a.batch}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
