"""Calibration images and the held-out accuracy check of a detector's ``edge`` (int8) export.

Calibration: images from a detection dataset (default: the synthetic shapes set's ``train`` split), or
any images (paths, folders, arrays, tensors), letterboxed exactly as ``zoo.predict`` does, full square
unless the graph has free height/width. Accuracy: COCO mAP50-95 of the PyTorch model and of the file on
images disjoint from the calibration ones (the dataset's ``val`` split, or the images after the
calibration ones when one dataset object was given), through the code ``zoo val`` runs, so the change is
the change a user would see. When it cannot be measured (a fixed batch the evaluator cannot fill) the
notes say why.

Models whose classes no labelled set here has (the released COCO checkpoints) are checked on real photos
instead (:mod:`zoo.tasks.detection.agreement`): *agreement* of the file's detections with the float32
model's. Their calibration defaults to real photos too (``data="photos"``): a COCO detector calibrated on
synthetic shapes keeps ranges that real images exceed (LeYOLO-Nano int8: agreement mAP50 0.57 against
0.9+ calibrated on photos). The photos are split so the check never sees a calibration image:
``CALIBRATION_PHOTOS`` (and their mirror images) calibrate, ``AGREEMENT_PHOTOS`` are checked.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from torch import Tensor

from zoo.core.errors import ExportError
from zoo.eval.datasets import DetectionDataset, load_dataset
from zoo.eval.datasets.synthetic import CLASSES as SYNTHETIC_CLASSES
from zoo.eval.photos import real_photos
from zoo.tasks.detection.agreement import agreement
from zoo.tasks.base.graph import GraphSpec
from zoo.tasks.detection.predict import expand_inputs, to_rgb_array
from zoo.tasks.detection.preprocess import preprocess_batch
from zoo.tasks.detection.val import val_full

logger = logging.getLogger(__name__)

METRIC = "AP"  # COCO mAP50-95, pycocotools' stats[0]
PHOTOS = "photos"  # data spec: scikit-image's real photographs (zoo.eval.photos)
# Disjoint halves of zoo.eval.photos.PHOTOS; the checked half holds the photos with the most COCO objects
# (the float32 Nano finds person, cat, cup, dining table, motorcycle x2 there) and the stereo pair stays
# together, so no near-duplicate crosses the split.
CALIBRATION_PHOTOS = ("camera", "rocket", "clock_motion", "hubble_deep_field")
AGREEMENT_PHOTOS = ("astronaut", "chelsea", "coffee", "motorcycle_left", "motorcycle_right")
AGREEMENT_TOLERANCE = 0.15  # agreement mAP50 >= 0.85 (issue 14's bound for int8 on real photos)


def is_dataset_spec(data: Any) -> bool:
    """True for what ``zoo.eval.datasets.load_dataset`` reads (else ``data`` is images or ``"photos"``)."""
    if isinstance(data, str) and data == PHOTOS:
        return False
    if data is None or isinstance(data, DetectionDataset):
        return True
    if isinstance(data, (str, Path)):
        path = Path(data)
        return str(data) == "synthetic" or path.suffix.lower() in (".yaml", ".yml", ".json") or \
            (path.is_dir() and any((path / p).is_file() for p in ("annotations.json", "train/annotations.json")))
    return False


def calibration_images(data: Any, n: int, imgsz: tuple[int, int], stride: int, *, rect: bool = False) -> list[Tensor]:
    """Up to ``n`` letterboxed (1, 3, H, W) float inputs from ``data`` (default: synthetic ``train``).

    ``data`` is a dataset spec (``None``, "synthetic", a data YAML, COCO JSON, dataset folder or a
    ``DetectionDataset``: its ``train`` split is used) or images (a path, folder, glob, list of images).
    """
    if n < 1:
        raise ExportError(f"calibration_size must be at least 1 (got {n}).")
    if isinstance(data, str) and data == PHOTOS:  # each photo and its mirror image
        try:
            photos = real_photos(list(CALIBRATION_PHOTOS))
        except ModuleNotFoundError as err:
            raise ExportError(f"calibration on real photos: {err} (or pass --data with your own images)") from err
        arrays = [a for p in photos for a in (p.image, p.image[:, ::-1].copy())][:n]
    elif is_dataset_spec(data):
        dataset = load_dataset(data, "train")
        arrays = [dataset.load_image(i) for i in range(min(n, len(dataset)))]
    else:
        arrays = [to_rgb_array(im)[0] for im in expand_inputs(data)[:n]]
    if not arrays:
        raise ExportError("The calibration data holds no images; pass a dataset or a list of images.")
    size = imgsz[0] if imgsz[0] == imgsz[1] else imgsz
    return [preprocess_batch([a], size, stride=stride, rect=rect)[0] for a in arrays]


def _num_classes(spec: GraphSpec) -> int | None:
    names = getattr(spec.reference, "names", None)
    return len(names) if names else None


def default_data(spec: GraphSpec, data: Any) -> Any:
    """``data``, or for ``None`` the default: the synthetic set, or real photos for a model of other classes."""
    if data is None and _num_classes(spec) not in (None, len(SYNTHETIC_CLASSES)):
        return PHOTOS
    return data


def calibration_inputs(spec: GraphSpec, data: Any, n: int) -> list[Tensor]:
    """Calibration batches shaped like the graph's example input (fixed batch repeated)."""
    data = default_data(spec, data)
    h, w = json.loads(spec.metadata["imgsz"])
    fixed = spec.example.shape[0]
    images = calibration_images(data, n, (h, w), int(spec.metadata["stride"]))
    return [im.expand(fixed, -1, -1, -1).contiguous() for im in images]


def accuracy(model: Any, dataset: Any, *, imgsz: int, batch: int = 8, progress: bool = False) -> dict[str, float]:
    """COCO ``AP`` (mAP50-95) and ``AP50`` of ``model`` on ``dataset`` at the official val settings."""
    result = val_full(model, dataset, imgsz=imgsz, batch=batch, progress=progress)
    return {"AP": float(result.stats["AP"]), "AP50": float(result.stats["AP50"])}


def accuracy_change(torch_side: dict[str, float], exported: dict[str, float]) -> float:
    """AP drop in absolute mAP units (0.01 = one mAP point; negative = the export scored higher)."""
    return torch_side[METRIC] - exported[METRIC]


def edge_accuracy(exported: Any, spec: GraphSpec, *, calibration: Any, eval_data: Any, eval_size: int,
                  batch: int | str, calibration_size: int, notes: list[str],
                  progress: bool = False) -> dict[str, Any] | None:
    """AP of the PyTorch model and of ``exported`` on held-out images, or None (with a note) if unmeasurable.

    Models whose classes the labelled data does not have get the agreement check on real photos instead.
    """
    calibration, eval_data = default_data(spec, calibration), default_data(spec, eval_data)
    if any(isinstance(d, str) and d == PHOTOS for d in (calibration, eval_data)):
        return photo_agreement(exported, spec, notes)  # calibrated on photos: checked on the other photos
    if eval_data is None and isinstance(calibration, DetectionDataset):
        # A dataset object is one split: hold out the images after those that calibrated.
        full, skip = calibration, calibration_size
    else:
        source = next((d for d in (eval_data, calibration) if d is not None and is_dataset_spec(d)), None)
        full, skip = load_dataset(source, "val"), 0
    nc = _num_classes(spec)
    if nc is not None and nc != full.num_classes:
        notes.append(f"AP change not measured: the model predicts {nc} classes but the evaluation set "
                     f"({full.source or 'synthetic'}) has {full.num_classes}; agreement with the float32 model on "
                     "real photos measured instead")
        return photo_agreement(exported, spec, notes)
    if len(full) <= skip:
        notes.append(f"AP change not measured: the calibration dataset has no images beyond the {skip} used to "
                     "calibrate; pass eval_data (--data) to measure it")
        return None
    if batch != "dynamic" and int(batch) > 1:
        notes.append(f"AP change not measured: the file takes batches of exactly {batch}; export with a dynamic "
                     "batch to evaluate it")
        return None
    records = full.records[skip:skip + eval_size]
    dataset = DetectionDataset(records, full.names, full.category_ids, source=full.source)
    imgsz = max(int(v) for v in spec.example.shape[2:])
    val_batch = 1 if batch != "dynamic" else 8
    torch_side = accuracy(spec.reference, dataset, imgsz=imgsz, batch=val_batch, progress=progress)
    onnx_side = accuracy(exported, dataset, imgsz=imgsz, batch=val_batch, progress=progress)
    held_out = f"images {skip}..{skip + len(records) - 1} (after the calibration images)" if skip else "val split"
    return {"metric": METRIC, "torch": torch_side, "onnx": onnx_side, "change": accuracy_change(torch_side, onnx_side),
            "data": f"{full.source or 'synthetic'} {held_out}", "size": len(records)}


def photo_agreement(exported: Any, spec: GraphSpec, notes: list[str]) -> dict[str, Any] | None:
    """Agreement (mAP50-95, mAP50) of ``exported`` with the float32 model on ``AGREEMENT_PHOTOS``.

    In the accuracy-report shape the exporter prints: ``torch`` is the reference scoring itself (1.0),
    ``change`` = 1 - agreement mAP50, checked against ``AGREEMENT_TOLERANCE``.
    """
    try:
        photos = real_photos(list(AGREEMENT_PHOTOS))
    except ModuleNotFoundError as err:  # scikit-image is an extra: the check says what it could not do
        notes.append(f"agreement on real photos not measured: {err}")
        return None
    h, w = json.loads(spec.metadata["imgsz"])
    found = agreement(spec.reference, exported, [p.image for p in photos], imgsz=max(h, w),
                      stride=int(spec.metadata["stride"]), names=[p.name for p in photos],
                      num_classes=_num_classes(spec) or 80)
    if not found.reference_boxes:  # nothing to agree on (untrained weights): unmeasured, not failed
        notes.append(f"agreement on real photos not measured: the float32 model detects nothing at conf 0.25 on "
                     f"{', '.join(found.images)} (untrained weights?); the numeric difference is the only evidence")
        return None
    return {"metric": "AP50", "check_metric": "agreement loss (1 - mAP50)", "torch": {"AP": 1.0, "AP50": 1.0}, "onnx": {"AP": found.ap, "AP50": found.ap50},
            "change": 1.0 - found.ap50, "tolerance": AGREEMENT_TOLERANCE,
            "data": f"agreement with float32 PyTorch on real photos ({', '.join(found.images)}; "
                    f"{found.reference_boxes} reference boxes at conf 0.25)", "size": len(photos),
            "licenses": [f"{p.name}: {p.license}" for p in photos]}
