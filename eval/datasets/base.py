"""What every detection dataset gives the trainer, the validator and the evaluator.

A dataset is a list of :class:`ImageRecord` (file, size, boxes, classes) plus class names and the map
from contiguous class ids to the dataset's own category ids. ``__getitem__`` returns, torchvision style::
    image:  uint8 tensor (3, H, W), RGB, the original image (no resize, no normalisation)
    target: {"boxes":    float32 (N, 4) x1, y1, x2, y2 in original pixels,
             "labels":   int64 (N,) contiguous class ids 0..nc-1 (indices into ``names``),
             "image_id": int (the dataset's id, what COCO results use),
             "orig_hw":  (H, W)}

Crowd regions are not objects to learn, so they are left out of ``target`` (as ultralytics' COCO
conversion does); the evaluator still sees them through :meth:`DetectionDataset.coco_ground_truth`.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset
from zoo.eval.images import load_image

from zoo.core.errors import DataError


@dataclass
class ImageRecord:
    """One image and its annotations (boxes xyxy in pixels, contiguous labels)."""

    path: Path
    image_id: int
    height: int
    width: int
    boxes: np.ndarray  # float32 (N, 4) xyxy
    labels: np.ndarray  # int64 (N,)
    iscrowd: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))  # bool (N,)
    areas: np.ndarray | None = None  # float (N,) annotation areas (COCO "area"); None -> box areas

    def __post_init__(self) -> None:
        if self.iscrowd.shape[0] != self.boxes.shape[0]:
            self.iscrowd = np.zeros(self.boxes.shape[0], dtype=bool)


class DetectionDataset(Dataset):
    """A validated list of :class:`ImageRecord` with class names; see the module docstring for items."""

    def __init__(self, records: Sequence[ImageRecord], names: Sequence[str], category_ids: Sequence[int],
                 *, source: str = "") -> None:
        if len(names) != len(category_ids):
            raise ValueError(f"{len(names)} class names but {len(category_ids)} category ids.")
        self.records = list(records)
        self.names = list(names)
        self.category_ids = [int(c) for c in category_ids]
        self.source = source
        self.coco: dict[str, Any] | None = None  # original COCO dict when loaded from one (exact GT for eval)

    @property
    def num_classes(self) -> int:
        return len(self.names)

    def __len__(self) -> int:
        return len(self.records)

    def load_image(self, index: int) -> np.ndarray:
        """The image of record ``index`` as (H, W, 3) uint8 RGB; errors name the file."""
        rec = self.records[index]
        try:
            image = load_image(rec.path)
        except FileNotFoundError as err:
            raise DataError(f"{self.source}: image id {rec.image_id}: file {rec.path} not found.") from err
        if image.shape[:2] != (rec.height, rec.width):
            raise DataError(f"{self.source}: image id {rec.image_id}: {rec.path} is {image.shape[1]}x{image.shape[0]} "
                            f"but the annotations say {rec.width}x{rec.height}.")
        return image

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, Any]]:
        rec = self.records[index]
        image = torch.from_numpy(np.ascontiguousarray(self.load_image(index).transpose(2, 0, 1)))
        keep = ~rec.iscrowd
        target = {
            "boxes": torch.from_numpy(rec.boxes[keep].astype(np.float32)).reshape(-1, 4),
            "labels": torch.from_numpy(rec.labels[keep].astype(np.int64)),
            "image_id": rec.image_id,
            "orig_hw": (rec.height, rec.width),
        }
        return image, target

    def coco_ground_truth(self) -> dict[str, Any]:
        """The dataset as a COCO instances dict (crowd regions included) for :mod:`zoo.eval.coco`."""
        if self.coco is not None:
            return self.coco
        images, annotations = [], []
        ann_id = 1
        for rec in self.records:
            images.append({"id": rec.image_id, "width": rec.width, "height": rec.height, "file_name": rec.path.name})
            wh = rec.boxes[:, 2:] - rec.boxes[:, :2]
            areas = rec.areas if rec.areas is not None else wh[:, 0] * wh[:, 1]
            for box, size, label, crowd, area in zip(rec.boxes.tolist(), wh.tolist(), rec.labels.tolist(),
                                                     rec.iscrowd.tolist(), np.asarray(areas).tolist()):
                annotations.append({"id": ann_id, "image_id": rec.image_id, "category_id": self.category_ids[label],
                                    "bbox": [box[0], box[1], size[0], size[1]], "area": float(area),
                                    "iscrowd": int(crowd)})
                ann_id += 1
        categories = [{"id": c, "name": n} for c, n in zip(self.category_ids, self.names)]
        return {"images": images, "annotations": annotations, "categories": categories}


def collate_detection(batch: Sequence[tuple[torch.Tensor, dict[str, Any]]]) -> tuple[list[torch.Tensor], list[dict]]:
    """``DataLoader`` collate: images stay a list (they may differ in size), targets a list of dicts."""
    images, targets = zip(*batch)
    return list(images), list(targets)
