"""A seeded synthetic detection set: coloured shapes on textured backgrounds, COCO JSON + PNGs.

Why: every place that needs labelled images (``zoo val`` without ``--data``, training smoke runs, tests,
benchmarks) must work offline and reproducibly. The task is hard enough that an untrained detector
scores ~0 mAP (5 shape classes, random colours, sizes from 16 to 96 px, cluttered backgrounds) and easy
enough that a small detector learns it in minutes on a CPU at imgsz 256-320 (shapes never overlap,
are saturated on a muted background, and the class is the silhouette alone).

Boxes are exact: each object is drawn into its own mask and its box is the mask's pixel extent, so a
perfect detector reaches AP 1.0. The same parameters give the same pixels and JSON on every machine
(numpy PCG64 + PIL drawing); generated sets are cached under a folder keyed by those parameters.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw
from zoo.eval.datasets.base import DetectionDataset
from zoo.eval.datasets.coco import coco_dataset

logger = logging.getLogger(__name__)

CLASSES = ("circle", "rectangle", "triangle", "cross", "diamond")
FORMAT_VERSION = 1  # bump when the drawing changes: it is part of the cache key
CACHE_ENV = "EFFZOO_CACHE"


@dataclass(frozen=True)
class SyntheticConfig:
    """Parameters of a synthetic set (all of them go into the cache key).

    Attributes:
        num_train / num_val: images per split.
        image_size: square image side in pixels.
        min_objects / max_objects: objects per image (uniform).
        min_size / max_size: object extent in pixels (uniform).
        seed: the one source of randomness; the val split uses an independent stream.
    """

    num_train: int = 512
    num_val: int = 64
    image_size: int = 256
    min_objects: int = 1
    max_objects: int = 4
    min_size: int = 16
    max_size: int = 96
    seed: int = 0

    def __post_init__(self) -> None:
        if self.num_train < 0 or self.num_val < 1:
            raise ValueError(f"Need num_train >= 0 and num_val >= 1, got {self.num_train} and {self.num_val}.")
        if not 8 <= self.min_size <= self.max_size <= self.image_size // 2:
            raise ValueError(f"Need 8 <= min_size <= max_size <= image_size / 2, got {self.min_size}, "
                             f"{self.max_size}, image_size {self.image_size}.")
        if not 1 <= self.min_objects <= self.max_objects:
            raise ValueError(f"Need 1 <= min_objects <= max_objects, got {self.min_objects}, {self.max_objects}.")

    def key(self) -> str:
        """Folder name: readable parameters plus a short hash of everything."""
        blob = json.dumps({**asdict(self), "version": FORMAT_VERSION}, sort_keys=True)
        digest = hashlib.sha256(blob.encode()).hexdigest()[:10]
        return f"shapes-v{FORMAT_VERSION}-{self.num_train}x{self.num_val}-{self.image_size}px-seed{self.seed}-{digest}"


def _background(rng: np.random.Generator, size: int) -> Image.Image:
    """Muted, low-saturation texture: smooth colour noise + stripes + grain (never a flat colour)."""
    base = rng.uniform(60, 190, 3)
    coarse = rng.normal(0, 28, (6, 6, 1)) + rng.normal(0, 8, (6, 6, 3))
    smooth = np.asarray(Image.fromarray(np.clip(128 + coarse, 0, 255).astype(np.uint8)).resize(
        (size, size), Image.Resampling.BICUBIC), dtype=np.float64) - 128
    yy, xx = np.mgrid[0:size, 0:size]
    angle, period = rng.uniform(0, math.pi), rng.uniform(8, 40)
    stripes = rng.uniform(5, 18) * np.sin((xx * math.cos(angle) + yy * math.sin(angle)) * 2 * math.pi / period)
    grain = rng.normal(0, 6, (size, size, 3))
    img = base + smooth + stripes[..., None] + grain
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))


def _vivid(rng: np.random.Generator) -> tuple[int, int, int]:
    """A saturated colour (random hue): stands out from the muted background but says nothing of the class."""
    hue = rng.uniform(0, 1)
    rgb = np.clip(np.abs((hue * 6 + np.array([0, 4, 2])) % 6 - 3) - 1, 0, 1)
    value = rng.uniform(0.55, 1.0)
    return tuple(int(v) for v in np.round(255 * value * (0.15 + 0.85 * rgb)))


def _polygon(cls: str, cx: float, cy: float, r: float, rng: np.random.Generator) -> list[tuple[float, float]]:
    if cls == "triangle":
        rot = rng.uniform(0, 2 * math.pi)
        return [(cx + r * math.cos(rot + k * 2 * math.pi / 3), cy + r * math.sin(rot + k * 2 * math.pi / 3))
                for k in range(3)]
    if cls == "diamond":
        rx, ry = r, r * rng.uniform(0.7, 1.0)
        return [(cx, cy - ry), (cx + rx, cy), (cx, cy + ry), (cx - rx, cy)]
    if cls == "cross":
        t = r * rng.uniform(0.3, 0.45)
        return [(cx - t, cy - r), (cx + t, cy - r), (cx + t, cy - t), (cx + r, cy - t), (cx + r, cy + t),
                (cx + t, cy + t), (cx + t, cy + r), (cx - t, cy + r), (cx - t, cy + t), (cx - r, cy + t),
                (cx - r, cy - t), (cx - t, cy - t)]
    raise AssertionError(cls)


def _draw_mask(cls: str, cx: float, cy: float, r: float, rng: np.random.Generator, mask: ImageDraw.ImageDraw) -> None:
    """Draw the object's silhouette (255) into its own mask; the image gets its colour through that mask."""
    if cls == "circle":
        mask.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
    elif cls == "rectangle":
        ax = r * rng.uniform(0.45, 1.0)
        box = [cx - r, cy - ax, cx + r, cy + ax] if rng.uniform() < 0.5 else [cx - ax, cy - r, cx + ax, cy + r]
        mask.rectangle(box, fill=255)
    else:
        mask.polygon(_polygon(cls, cx, cy, r, rng), fill=255)


def render_image(rng: np.random.Generator, cfg: SyntheticConfig) -> tuple[Image.Image, list[dict[str, Any]]]:
    """One image and its objects ``{category_id, bbox: [x, y, w, h]}`` (exact pixel extents)."""
    size = cfg.image_size
    image = _background(rng, size)
    taken: list[tuple[int, int, int, int]] = []
    objects = []
    for _ in range(int(rng.integers(cfg.min_objects, cfg.max_objects + 1))):
        for _attempt in range(30):  # place without overlap; give up on this object if the image is full
            cls = int(rng.integers(len(CLASSES)))
            r = rng.uniform(cfg.min_size, cfg.max_size) / 2
            cx, cy = rng.uniform(r + 1, size - r - 1, 2)
            layer = Image.new("L", (size, size), 0)
            colour = _vivid(rng)
            _draw_mask(CLASSES[cls], cx, cy, r, rng, ImageDraw.Draw(layer))
            bbox = layer.getbbox()  # (left, top, right, bottom), right/bottom exclusive
            if bbox is None:
                continue
            if any(bbox[0] < t[2] + 2 and t[0] < bbox[2] + 2 and bbox[1] < t[3] + 2 and t[1] < bbox[3] + 2
                   for t in taken):
                continue
            image.paste(colour, mask=layer)
            taken.append(bbox)
            objects.append({"category_id": cls + 1,
                            "bbox": [bbox[0], bbox[1], bbox[2] - bbox[0], bbox[3] - bbox[1]]})
            break
    return image, objects


def write_split(folder: Path, num_images: int, rng: np.random.Generator, cfg: SyntheticConfig) -> None:
    """Render ``num_images`` into ``folder/images/*.png`` and ``folder/annotations.json``."""
    (folder / "images").mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for i in range(1, num_images + 1):
        image, objects = render_image(rng, cfg)
        name = f"{i:06d}.png"
        image.save(folder / "images" / name, format="PNG", compress_level=1)
        images.append({"id": i, "file_name": name, "width": cfg.image_size, "height": cfg.image_size})
        for obj in objects:
            w, h = obj["bbox"][2], obj["bbox"][3]
            annotations.append({"id": len(annotations) + 1, "image_id": i, "category_id": obj["category_id"],
                                "bbox": obj["bbox"], "area": float(w * h), "iscrowd": 0})
    data = {"info": {"description": "effzoo synthetic shapes", "config": asdict(cfg), "version": FORMAT_VERSION},
            "images": images, "annotations": annotations,
            "categories": [{"id": i + 1, "name": n} for i, n in enumerate(CLASSES)]}
    (folder / "annotations.json").write_text(json.dumps(data), encoding="utf-8")


def generate(root: str | Path, cfg: SyntheticConfig = SyntheticConfig()) -> Path:
    """Write ``root/train`` and ``root/val`` (COCO layout) atomically: built in a temporary folder, then renamed.

    An existing complete ``root`` is left as it is. Returns ``root``.
    """
    root = Path(root)
    if (root / "val" / "annotations.json").is_file():
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.", dir=root.parent))
    try:
        seeds = np.random.SeedSequence(cfg.seed).spawn(2)
        write_split(tmp / "train", cfg.num_train, np.random.default_rng(seeds[0]), cfg)
        write_split(tmp / "val", cfg.num_val, np.random.default_rng(seeds[1]), cfg)
        try:
            os.rename(tmp, root)
        except OSError:
            if not (root / "val" / "annotations.json").is_file():  # not a concurrent writer that won the race
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return root


def cache_dir() -> Path:
    """Where generated data lives: ``$EFFZOO_CACHE`` or ``~/.cache/effzoo``."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "effzoo")


def synthetic_root(cfg: SyntheticConfig = SyntheticConfig(), root: str | Path | None = None) -> Path:
    """Folder of the set for ``cfg``, generating it on first use (under ``root`` or the cache folder)."""
    folder = Path(root) if root is not None else cache_dir() / "synthetic" / cfg.key()
    if not (folder / "val" / "annotations.json").is_file():
        logger.info("generating synthetic shapes set in %s", folder)
    return generate(folder, cfg)


def synthetic_dataset(split: str = "val", cfg: SyntheticConfig = SyntheticConfig(), *,
                      root: str | Path | None = None) -> DetectionDataset:
    """The synthetic set's ``split`` ("train" or "val") as a :class:`DetectionDataset` (generated if needed)."""
    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val', got {split!r}.")
    folder = synthetic_root(cfg, root) / split
    return coco_dataset(folder / "annotations.json", folder / "images", check_images=False)
