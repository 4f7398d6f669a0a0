"""The COCO instances JSON format: reading it with errors that name the file, and validating its fields.

Shared by the evaluator (:mod:`zoo.eval.coco`, ground truth given as a file or dict) and the dataset
loader (:mod:`zoo.eval.datasets.coco`), so both refuse the same malformed files with the same words.
"""
from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from zoo.core.errors import DataError

BOUNDS_TOLERANCE_PX = 1.0  # real COCO boxes overshoot the border by float noise; more than this is an error


def read_json(path: str | Path, what: str = "annotation file") -> Any:
    """Load a JSON file; a missing or malformed file is a one-line error naming it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what.capitalize()} not found: {path}")
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: not valid JSON ({err.msg} at line {err.lineno}, column {err.colno}).") from err
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not a UTF-8 text file ({err.reason}).") from err


def _ann_label(ann: Mapping[str, Any], index: int) -> str:
    return f"annotation id {ann['id']}" if "id" in ann else f"annotation #{index}"


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def validate_coco(data: Any, source: str, *, check_bounds: bool = True,
                  bounds_tolerance: float = BOUNDS_TOLERANCE_PX) -> None:
    """Check a COCO instances dict; raise :class:`DataError` naming ``source``, the id and the field.

    Checks: top-level lists; unique image/category ids, unique non-negative annotation ids (0 included, as pycocotools and
    faster-coco-eval's generators number them); every annotation's
    ``image_id`` and ``category_id`` known; ``bbox`` = 4 finite numbers with width, height >= 0; and with
    ``check_bounds`` the box inside its image (``bounds_tolerance`` pixels of slack).
    """
    if not isinstance(data, Mapping):
        raise DataError(f"{source}: expected a COCO object with 'images', 'annotations', 'categories'.")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise DataError(f"{source}: missing or non-list field {key!r} (a COCO instances file needs "
                            "'images', 'annotations' and 'categories').")
    images: dict[int, Mapping[str, Any]] = {}
    for i, img in enumerate(data["images"]):
        if not isinstance(img, Mapping) or not isinstance(img.get("id"), int):
            raise DataError(f"{source}: images[{i}]: missing integer field 'id'.")
        if img["id"] in images:
            raise DataError(f"{source}: image id {img['id']} appears twice in 'images'.")
        if check_bounds:
            for field in ("width", "height"):
                if not _number(img.get(field)) or img[field] <= 0:
                    raise DataError(f"{source}: image id {img['id']}: field {field!r} must be a positive number, "
                                    f"got {img.get(field)!r}.")
        images[img["id"]] = img
    cats: set[int] = set()
    for i, cat in enumerate(data["categories"]):
        if not isinstance(cat, Mapping) or not isinstance(cat.get("id"), int):
            raise DataError(f"{source}: categories[{i}]: missing integer field 'id'.")
        if cat["id"] in cats:
            raise DataError(f"{source}: category id {cat['id']} appears twice in 'categories'.")
        cats.add(cat["id"])
    ann_ids: set[int] = set()
    for i, ann in enumerate(data["annotations"]):
        if not isinstance(ann, Mapping):
            raise DataError(f"{source}: annotations[{i}] is not an object.")
        label = _ann_label(ann, i)
        for field in ("id", "image_id", "category_id", "bbox"):
            if field not in ann:
                raise DataError(f"{source}: {label}: missing field {field!r}.")
        if not isinstance(ann["id"], int) or isinstance(ann["id"], bool) or ann["id"] < 0 or ann["id"] in ann_ids:
            raise DataError(f"{source}: {label}: field 'id' must be a unique non-negative integer.")
        ann_ids.add(ann["id"])
        if ann["image_id"] not in images:
            raise DataError(f"{source}: {label}: field 'image_id' = {ann['image_id']!r} is not in 'images'.")
        if ann["category_id"] not in cats:
            raise DataError(f"{source}: {label}: unknown category: field 'category_id' = {ann['category_id']!r} "
                            f"is not in 'categories' (ids {min(cats, default=None)}..{max(cats, default=None)}).")
        bbox = ann["bbox"]
        if not isinstance(bbox, (list, tuple)) or len(bbox) != 4 or not all(_number(v) for v in bbox):
            raise DataError(f"{source}: {label}: field 'bbox' must be 4 finite numbers [x, y, width, height], "
                            f"got {bbox!r}.")
        if bbox[2] < 0 or bbox[3] < 0:
            raise DataError(f"{source}: {label}: field 'bbox' {list(bbox)} has a negative size "
                            "(COCO boxes are [x, y, width, height] with width, height >= 0).")
        if "area" in ann and (not _number(ann["area"]) or ann["area"] < 0):
            raise DataError(f"{source}: {label}: field 'area' must be a number >= 0, got {ann['area']!r}.")
        if check_bounds:
            img = images[ann["image_id"]]
            x, y, w, h = bbox
            tol = bounds_tolerance
            if x < -tol or y < -tol or x + w > img["width"] + tol or y + h > img["height"] + tol:
                raise DataError(f"{source}: {label}: field 'bbox' {list(bbox)} lies outside image id {img['id']} "
                                f"({img['width']}x{img['height']}): box outside image.")


