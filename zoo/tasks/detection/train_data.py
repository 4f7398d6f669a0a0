"""The detection training data module: augmented samples from any ``zoo.eval.datasets.DetectionDataset``.

Items are keyed by ``(epoch, index)`` (see ``zoo.engine.sampler.ResumableSampler``): the epoch decides
whether mosaic is still on (it is closed for the last ``close_mosaic`` epochs) and, with the run's seed and
the index, seeds the sample's generator. A sample is therefore the same whichever worker builds it and
whether or not the run was resumed in between.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from zoo.core.errors import DataError
from zoo.core.rng import sample_generator
from zoo.eval.datasets.base import DetectionDataset
from zoo.tasks.detection.augment import (Sample, hflip, hsv_jitter, letterbox_square, mosaic4, random_affine,
                                      resize_long_side)
from zoo.tasks.detection.train_config import DetectionTrainConfig


class DetectionTrainSet(Dataset):
    """Training view of a detection dataset with the recipe's augmentations.

    Args:
        dataset: the source images and boxes (crowd regions are not trained on).
        cfg: the recipe (image size, augmentation strengths, seed).
        epochs: epochs of the run (mosaic is off from ``epochs - close_mosaic`` on).

    Items: ``(image, targets)``: uint8 (3, imgsz, imgsz) RGB and float32 (N, 5) rows
    ``(class, x1, y1, x2, y2)`` in pixels of that image.
    """

    def __init__(self, dataset: DetectionDataset, cfg: DetectionTrainConfig, epochs: int) -> None:
        self.dataset = dataset
        self.cfg = cfg
        self.epochs = epochs

    def __len__(self) -> int:
        return len(self.dataset)

    def mosaic_on(self, epoch: int) -> bool:
        return self.cfg.mosaic > 0 and epoch < self.epochs - self.cfg.close_mosaic

    def load(self, index: int) -> Sample:
        """Image ``index`` resized so its long side is ``imgsz``, with its non-crowd boxes."""
        rec = self.dataset.records[index]
        keep = ~rec.iscrowd
        sample = Sample(self.dataset.load_image(index), rec.boxes[keep], rec.labels[keep])
        return resize_long_side(sample, self.cfg.imgsz)

    def sample(self, epoch: int, index: int) -> Sample:
        """The augmented sample of ``index`` in ``epoch`` (deterministic given the run's seed)."""
        cfg = self.cfg
        rng = sample_generator(cfg.seed, epoch, index)
        affine = dict(degrees=cfg.degrees, translate=cfg.translate, scale=cfg.scale, shear=cfg.shear)
        if self.mosaic_on(epoch) and rng.random() < cfg.mosaic:
            others = rng.integers(0, len(self.dataset), 3).tolist()
            smp = mosaic4([self.load(i) for i in [index, *others]], cfg.imgsz, rng)
        else:
            smp = letterbox_square(self.load(index), cfg.imgsz)
        smp = random_affine(smp, cfg.imgsz, rng, **affine)
        smp = Sample(hsv_jitter(smp.image, rng, cfg.hsv_h, cfg.hsv_s, cfg.hsv_v), smp.boxes, smp.classes)
        if rng.random() < cfg.fliplr:
            smp = hflip(smp)
        return smp

    def __getitem__(self, key: tuple[int, int] | int) -> tuple[torch.Tensor, torch.Tensor]:
        epoch, index = key if isinstance(key, tuple) else (0, key)
        smp = self.sample(epoch, index)
        image = torch.from_numpy(np.ascontiguousarray(smp.image.transpose(2, 0, 1)))
        targets = torch.from_numpy(np.concatenate([smp.classes[:, None].astype(np.float32), smp.boxes], 1))
        return image, targets


def collate(items: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack images to (B, 3, S, S) uint8 and targets to (N, 6) rows ``(image in batch, class, x1, y1, x2, y2)``."""
    images = torch.stack([im for im, _ in items])
    rows = [torch.cat([torch.full((t.shape[0], 1), float(i)), t], 1) for i, (_, t) in enumerate(items)]
    return images, torch.cat(rows) if rows else torch.zeros(0, 6)


def check_labels(dataset: DetectionDataset, num_classes: int, what: str) -> None:
    """Refuse labels the model cannot represent, naming the image and the label."""
    for rec in dataset.records:
        if rec.labels.size and (rec.labels.min() < 0 or rec.labels.max() >= num_classes):
            bad = int(rec.labels.max() if rec.labels.max() >= num_classes else rec.labels.min())
            raise DataError(f"{what}: image id {rec.image_id} ({rec.path.name}) has class id {bad}, outside the "
                            f"model's {num_classes} classes (0..{num_classes - 1}); fix the labels or train a model "
                            "with as many classes as the dataset names.")


def describe(dataset: DetectionDataset) -> dict[str, Any]:
    """Counts for the start-of-run log line."""
    n_boxes = sum(int((~r.iscrowd).sum()) for r in dataset.records)
    return {"images": len(dataset), "boxes": n_boxes, "classes": dataset.num_classes}
