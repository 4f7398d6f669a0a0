"""COCO instances datasets (a JSON file + an image folder), validated on load.

Every problem is reported as one line naming the file, the annotation or image id and the field, so a
broken conversion is found before an hour of validation rather than as a wrong mAP afterwards.
Category ids need not be contiguous (COCO's are 1..90 with gaps): class ``i`` is the ``i``-th category
in increasing id order, which for COCO 2017 is exactly the order of the 80 class names of the models.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from zoo.eval.coco_format import read_json, validate_coco
from zoo.eval.datasets.base import DetectionDataset, ImageRecord
from zoo.eval.images import image_size

from zoo.core.errors import DataError


def _check_image_file(path: Path, image_id: int, width: int, height: int, source: str) -> None:
    if not path.is_file():
        raise DataError(f"{source}: image id {image_id}: missing image, file {path} not found.")
    try:
        size = image_size(path)  # after EXIF rotation: the pixels the loader returns and boxes refer to
    except DataError as err:
        raise DataError(f"{source}: image id {image_id}: unreadable image {path} ({err.__cause__ or err}).") from err
    if size != (width, height):
        raise DataError(f"{source}: image id {image_id}: {path} is {size[0]}x{size[1]} but 'images' says "
                        f"{width}x{height}.")


def coco_dataset(ann_file: str | Path, image_dir: str | Path | None = None, *, check_images: bool = True,
                 data: Mapping[str, Any] | None = None) -> DetectionDataset:
    """Load and validate a COCO instances file as a :class:`DetectionDataset`.

    Args:
        ann_file: the instances JSON.
        image_dir: folder holding ``file_name`` of every image (default: ``images/`` beside the JSON
            if it exists, else the JSON's folder).
        check_images: open every image header (missing, unreadable, wrong size are errors).
        data: the already parsed JSON (``ann_file`` then only names it in messages).
    """
    ann_file = Path(ann_file)
    source = str(ann_file)
    if data is None:
        data = read_json(ann_file)
    validate_coco(data, source)
    if data["images"] and not data["annotations"]:
        raise DataError(f"{source}: {len(data['images'])} images but no annotations: every image would count as "
                        "background (nothing to learn, AP undefined); check that the right file was given.")
    if image_dir is None:
        image_dir = ann_file.parent / "images" if (ann_file.parent / "images").is_dir() else ann_file.parent
    image_dir = Path(image_dir)
    cats = sorted(data["categories"], key=lambda c: c["id"])
    cat_index = {c["id"]: i for i, c in enumerate(cats)}
    per_image: dict[int, list[Mapping[str, Any]]] = {img["id"]: [] for img in data["images"]}
    for ann in data["annotations"]:
        per_image[ann["image_id"]].append(ann)
    records = []
    for img in sorted(data["images"], key=lambda im: im["id"]):
        if "file_name" not in img:
            raise DataError(f"{source}: image id {img['id']}: missing field 'file_name'.")
        path = image_dir / img["file_name"]
        if check_images:
            _check_image_file(path, img["id"], int(img["width"]), int(img["height"]), source)
        anns = per_image[img["id"]]
        xywh = np.array([a["bbox"] for a in anns], dtype=np.float64).reshape(-1, 4)
        boxes = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, img["width"])
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, img["height"])
        records.append(ImageRecord(
            path=path, image_id=int(img["id"]), height=int(img["height"]), width=int(img["width"]),
            boxes=boxes.astype(np.float32),
            labels=np.array([cat_index[a["category_id"]] for a in anns], dtype=np.int64),
            iscrowd=np.array([bool(a.get("iscrowd", 0)) for a in anns], dtype=bool),
            areas=np.array([a.get("area", a["bbox"][2] * a["bbox"][3]) for a in anns], dtype=np.float64),
        ))
    dataset = DetectionDataset(records, [str(c.get("name", c["id"])) for c in cats], [c["id"] for c in cats],
                               source=source)
    dataset.coco = dict(data)
    return dataset


def find_coco_annotations(folder: str | Path) -> Path:
    """The instances JSON of a dataset folder: ``annotations.json``, or the single ``*.json`` / ``annotations/*.json``."""
    folder = Path(folder)
    if (folder / "annotations.json").is_file():
        return folder / "annotations.json"
    candidates = sorted(folder.glob("*.json")) or sorted((folder / "annotations").glob("*.json"))
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise FileNotFoundError(f"No COCO annotations in {folder}: expected {folder / 'annotations.json'}.")
    raise DataError(f"Several JSON files in {folder} ({', '.join(p.name for p in candidates)}); pass the "
                    "instances file itself.")
