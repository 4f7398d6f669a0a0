"""YOLO-format datasets (the ultralytics data YAML: ``path``, ``train``, ``val``, ``names``), validated on load.

Layout, as ultralytics reads it: a split is a folder of images, a ``.txt`` listing image paths, or a list
of those; each image ``.../images/.../x.jpg`` has labels in ``.../labels/.../x.txt``, one object per line
``class cx cy w h`` normalised to [0, 1]. A missing label file means an image without objects (the
ultralytics convention); everything else that is wrong is an error naming the file, line and field.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from zoo.eval.datasets.base import DetectionDataset, ImageRecord
from zoo.eval.images import IMAGE_SUFFIXES, image_size

from zoo.core.errors import DataError

BOUNDS_TOLERANCE = 0.01  # normalised slack for boxes at the border (rounding in exported labels)


def read_text_file(path: Path, what: str) -> str:
    """A UTF-8 text file's content; a file in another encoding is an error naming it (not a bare codec error)."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: {what} is not UTF-8 text (byte {err.start}: {err.reason}); save it as UTF-8.") \
            from err


def read_data_yaml(path: str | Path) -> dict[str, Any]:
    """Load and check an ultralytics data YAML (``names`` as a list or {id: name} with ids 0..nc-1)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Data YAML not found: {path}")
    try:
        data = yaml.safe_load(read_text_file(path, "data YAML"))
    except yaml.YAMLError as err:
        raise DataError(f"{path}: not valid YAML ({err}).") from err
    if not isinstance(data, Mapping):
        raise DataError(f"{path}: expected a mapping with 'path', 'train', 'val' and 'names'.")
    names = data.get("names")
    if isinstance(names, Mapping):
        keys = sorted(int(k) for k in names)
        if keys != list(range(len(keys))):
            raise DataError(f"{path}: field 'names' must have ids 0..{len(keys) - 1}, got {keys[:10]}.")
        names = [str(names[k]) if k in names else str(names[str(k)]) for k in keys]
    elif isinstance(names, list):
        names = [str(n) for n in names]
    else:
        raise DataError(f"{path}: missing field 'names' (a list of class names or {{id: name}}).")
    return {**data, "names": names}


def _split_images(root: Path, spec: Any, yaml_path: Path) -> list[Path]:
    """Image paths of one split: a folder, a .txt list (paths relative to ``root``), or a list of them."""
    if isinstance(spec, list):
        return [p for s in spec for p in _split_images(root, s, yaml_path)]
    if not isinstance(spec, str):
        raise DataError(f"{yaml_path}: a split must be a folder, a .txt file or a list, got {spec!r}.")
    target = (root / spec) if not Path(spec).is_absolute() else Path(spec)
    if target.is_dir():
        return sorted(p for p in target.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if target.suffix == ".txt" and target.is_file():
        out = []
        for line in read_text_file(target, "image list").splitlines():
            line = line.strip()
            if line:
                p = Path(line)
                out.append(p if p.is_absolute() else (root / line).resolve())
        return out
    raise DataError(f"{yaml_path}: split {spec!r} not found (looked for {target}).")


def label_path(image: Path) -> Path:
    """``.../images/.../x.jpg`` -> ``.../labels/.../x.txt`` (the last ``images`` folder is swapped)."""
    parts = list(image.parts)
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] == "images":
            parts[i] = "labels"
            return Path(*parts).with_suffix(".txt")
    return image.with_suffix(".txt")


def _parse_labels(path: Path, nc: int, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Boxes (N, 4) xyxy pixels and labels (N,) of one label file; errors name file, line and field."""
    boxes, labels = [], []
    for lineno, line in enumerate(read_text_file(path, "label file").splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        where = f"{path}: line {lineno}"
        if len(fields) != 5:
            raise DataError(f"{where}: expected 5 fields 'class cx cy w h', got {len(fields)} "
                            "(segments and keypoints are not supported here).")
        try:
            cls_f = float(fields[0])
            cx, cy, w, h = (float(v) for v in fields[1:])
        except ValueError as err:
            raise DataError(f"{where}: non-numeric field in {line.strip()!r}.") from err
        if not all(math.isfinite(v) for v in (cls_f, cx, cy, w, h)):
            raise DataError(f"{where}: non-finite value in {line.strip()!r}.")
        if cls_f != int(cls_f) or not 0 <= int(cls_f) < nc:
            raise DataError(f"{where}: field 'class' = {fields[0]} is an unknown category (names has ids 0..{nc - 1}).")
        if w < 0 or h < 0:
            raise DataError(f"{where}: field 'w'/'h' ({w}, {h}) is a negative size.")
        x1, y1, x2, y2 = cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2
        tol = BOUNDS_TOLERANCE
        if x1 < -tol or y1 < -tol or x2 > 1 + tol or y2 > 1 + tol:
            raise DataError(f"{where}: box (cx {cx}, cy {cy}, w {w}, h {h}) lies outside the image: box outside "
                            "image (coordinates are normalised to 0..1).")
        boxes.append([max(x1, 0.0) * width, max(y1, 0.0) * height, min(x2, 1.0) * width, min(y2, 1.0) * height])
        labels.append(int(cls_f))
    return np.array(boxes, dtype=np.float32).reshape(-1, 4), np.array(labels, dtype=np.int64)


def yolo_dataset(data_yaml: str | Path, split: str = "val") -> DetectionDataset:
    """Load one split of an ultralytics-format dataset, validating every image and label file.

    Image ids are 1..N in sorted path order; category ids equal class ids (0..nc-1).
    """
    yaml_path = Path(data_yaml)
    data = read_data_yaml(yaml_path)
    if split not in data:
        raise DataError(f"{yaml_path}: no field {split!r} (splits present: "
                        f"{', '.join(k for k in ('train', 'val', 'test') if k in data) or 'none'}).")
    root = Path(data.get("path") or yaml_path.parent)
    if not root.is_absolute():
        root = (yaml_path.parent / root).resolve()
    images = _split_images(root, data[split], yaml_path)
    if not images:
        raise DataError(f"{yaml_path}: split {split!r} has no images.")
    names = data["names"]
    records = []
    n_label_files = 0
    for image_id, img_path in enumerate(images, start=1):
        if not img_path.is_file():
            raise DataError(f"{yaml_path}: split {split!r}: missing image {img_path}.")
        try:
            width, height = image_size(img_path)  # after EXIF rotation, as the loader will return it
        except DataError as err:
            raise DataError(f"{img_path}: unreadable image ({err.__cause__ or err}).") from err
        lbl = label_path(img_path)
        n_label_files += lbl.is_file()
        boxes, labels = (_parse_labels(lbl, len(names), width, height) if lbl.is_file()
                         else (np.zeros((0, 4), np.float32), np.zeros(0, np.int64)))
        records.append(ImageRecord(path=img_path, image_id=image_id, height=height, width=width,
                                   boxes=boxes, labels=labels))
    if not n_label_files:
        raise DataError(f"{yaml_path}: split {split!r}: none of its {len(images)} images has a label file (looked "
                        f"for e.g. {label_path(images[0])}); put the labels in a 'labels/' folder beside "
                        "'images/', or every image would silently count as background.")
    return DetectionDataset(records, names, list(range(len(names))), source=str(yaml_path))
