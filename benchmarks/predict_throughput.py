"""Images per second of ``zoo.predict`` on a folder of 64 images, batch 1 and batch 8.

The folder holds synthetic 640x480 JPEGs (written once to a temporary folder), so the timing covers
what a user's call does end to end: decode, letterbox, forward, NMS, rescale. One warm-up call,
then the median of ``--repeats`` timed passes over the whole folder.

    python benchmarks/predict_throughput.py --weights ../shared/reference/leyolo/LeYOLONano.pt
    python benchmarks/predict_throughput.py --model leyolo-nano --images 16 --repeats 1
"""
from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

import zoo  # noqa: E402


def write_images(folder: Path, n: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    for i in range(n):
        base = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
        img = Image.fromarray(base).resize((640, 480), Image.Resampling.BICUBIC)
        img.save(folder / f"{i:03d}.jpg", quality=90)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="leyolo-nano")
    parser.add_argument("--weights", default=None, help="checkpoint (default: untrained weights, same cost)")
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    model = zoo.create_model(args.model, checkpoint_path=args.weights).eval()
    if hasattr(model, "fuse"):
        model = model.fuse()
    print(f"{args.model} ({'weights ' + str(args.weights) if args.weights else 'untrained'}), {args.images} images "
          f"640x480 JPEG, imgsz {args.imgsz}, float32, CPU, torch {torch.__version__}, {torch.get_num_threads()} "
          f"threads, python {platform.python_version()}; median of {args.repeats}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write_images(folder, args.images)
        zoo.predict(model, folder, imgsz=args.imgsz, batch=max(args.batches))  # warm-up
        base = None
        for batch in args.batches:
            times = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                zoo.predict(model, folder, imgsz=args.imgsz, batch=batch)
                times.append(time.perf_counter() - start)
            ips = args.images / statistics.median(times)
            base = base or ips
            print(f"  batch {batch:>2}: {ips:6.2f} images/s  (runs: {', '.join(f'{t:.2f}' for t in times)} s; "
                  f"{ips / base:.2f} x batch {args.batches[0]})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
