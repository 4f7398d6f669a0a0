"""Detection datasets: COCO JSON, ultralytics YOLO txt, and the seeded synthetic shapes set.

``load_dataset(data, split)`` picks the loader from what ``data`` is; every loader returns a
:class:`~zoo.eval.datasets.base.DetectionDataset` (items: uint8 image (3, H, W) + target dict, see base.py).
"""
from __future__ import annotations

from pathlib import Path

from zoo.eval.datasets.base import DetectionDataset, ImageRecord, collate_detection
from zoo.eval.datasets.coco import coco_dataset, find_coco_annotations
from zoo.eval.datasets.synthetic import SyntheticConfig, synthetic_dataset
from zoo.eval.datasets.yolo import yolo_dataset

__all__ = ["DetectionDataset", "ImageRecord", "SyntheticConfig", "coco_dataset", "collate_detection",
           "load_dataset", "synthetic_dataset", "yolo_dataset"]


def load_dataset(data: str | Path | DetectionDataset | None = None, split: str = "val") -> DetectionDataset:
    """Resolve ``data`` to a dataset split.

    ``None`` or ``"synthetic"``: the default synthetic shapes set (generated once, cached);
    ``*.yaml``/``*.yml``: an ultralytics data YAML; ``*.json``: a COCO instances file (images in
    ``images/`` beside it); a folder: ``<folder>/<split>/`` or ``<folder>/`` holding ``annotations.json``
    and ``images/`` (the layout the synthetic set is written in).
    """
    if isinstance(data, DetectionDataset):
        return data
    if data is None or str(data) == "synthetic":
        return synthetic_dataset(split)
    path = Path(data)
    if path.suffix.lower() in (".yaml", ".yml"):
        return yolo_dataset(path, split)
    if path.suffix.lower() == ".json":
        return coco_dataset(path)
    if path.is_dir():
        folder = path / split if (path / split).is_dir() else path
        return coco_dataset(find_coco_annotations(folder), folder / "images" if (folder / "images").is_dir() else folder)
    raise FileNotFoundError(f"Dataset not found: {data} (give 'synthetic', a data YAML, a COCO JSON or a folder).")
