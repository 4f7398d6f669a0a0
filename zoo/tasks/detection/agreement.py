"""Agreement of an exported detector with the float32 PyTorch model on real photos, without labels.

Why: there is no COCO here, so the AP change of an int8/float16 COCO detector cannot be measured; what
can be measured is how far the file drifts from the model it came from, on real images. *Agreement* is
COCO mAP50-95 and mAP50 of the file's detections (exported-file side at conf 0.001, like ``zoo val``)
scored against the PyTorch model's detections at conf 0.25 as ground truth (what ``zoo predict`` would
show a user). Identical outputs score 1.0 on every image where the reference finds something; a file
that misses or moves boxes scores lower. Both sides see the same letterboxed input (full square, so a
fixed-size file takes it) and are compared in input pixels.

The photos are :mod:`zoo.eval.photos` (scikit-image's, read offline) plus ``bus.jpg`` when given; each
report names the images, so a number is reproducible.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from zoo.eval.coco import evaluate
from zoo.eval.photos import COCO_LIKE, real_photos
from zoo.tasks.detection.postprocess import non_max_suppression
from zoo.tasks.detection.predict import run_model
from zoo.tasks.detection.preprocess import preprocess_batch

logger = logging.getLogger(__name__)

REFERENCE_CONF = 0.25  # zoo predict's default: the detections a user sees are the "ground truth"
CANDIDATE_CONF = 0.001  # zoo val's threshold: the file's full ranked list is scored, as in COCO val
IOU = 0.7


@dataclass
class Agreement:
    """How well a file's detections match the reference model's on unlabelled images.

    Attributes:
        ap / ap50: COCO mAP50-95 / mAP50 of the candidate against the reference's detections.
        images: names of the images used; ``reference_boxes``: how many reference detections (GT) there were.
    """

    ap: float
    ap50: float
    images: list[str] = field(default_factory=list)
    reference_boxes: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"AP": self.ap, "AP50": self.ap50, "images": list(self.images), "reference_boxes": self.reference_boxes}


def _detect(model: Callable[[torch.Tensor], Any], x: torch.Tensor, conf: float) -> torch.Tensor:
    return non_max_suppression(run_model(model, x), conf=conf, iou=IOU)[0]  # (N, 6) xyxy, score, class


def agreement(reference: Callable[[torch.Tensor], Any], candidate: Callable[[torch.Tensor], Any],
              images: Sequence[np.ndarray], *, imgsz: int | tuple[int, int], stride: int = 32,
              names: Sequence[str] | None = None, num_classes: int = 80) -> Agreement:
    """Score ``candidate``'s detections against ``reference``'s on ``images`` (module docstring).

    Args:
        reference: the float32 PyTorch model (or anything ``zoo.predict`` runs).
        candidate: the exported file (e.g. an ``OnnxModel`` / ``OpenVinoModel``).
        images: (H, W, 3) uint8 RGB photos.
        imgsz: the square (or (h, w)) letterbox size both sides run at.
        names: image names for the report (default ``image0``, ...).
        num_classes: the models' class count (one COCO category per class).

    Returns:
        An :class:`Agreement`; AP is NaN when the reference detects nothing on any image.
    """
    gt_images, gt_anns, dets = [], [], []
    for i, image in enumerate(images):
        x, _ = preprocess_batch([image], imgsz, stride=stride, rect=False)
        h, w = int(x.shape[2]), int(x.shape[3])
        gt_images.append({"id": i + 1, "width": w, "height": h, "file_name": f"{i}.jpg"})
        for row in _detect(reference, x, REFERENCE_CONF).tolist():
            x1, y1, x2, y2, _, c = row
            gt_anns.append({"id": len(gt_anns) + 1, "image_id": i + 1, "category_id": int(c) + 1,
                            "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1), "iscrowd": 0})
        for row in _detect(candidate, x, CANDIDATE_CONF).tolist():
            x1, y1, x2, y2, s, c = row
            dets.append({"image_id": i + 1, "category_id": int(c) + 1, "bbox": [x1, y1, x2 - x1, y2 - y1], "score": s})
    labels = list(names) if names is not None else [f"image{i}" for i in range(len(images))]
    if not gt_anns:
        logger.warning("agreement: the reference model detects nothing on %s", ", ".join(labels))
        return Agreement(float("nan"), float("nan"), labels, 0)
    gt = {"images": gt_images, "annotations": gt_anns,
          "categories": [{"id": c + 1, "name": str(c)} for c in range(num_classes)]}
    stats = evaluate(gt, dets)
    return Agreement(float(stats["AP"]), float(stats["AP50"]), labels, len(gt_anns))


def photo_set(extra: Sequence[tuple[str, np.ndarray]] = ()) -> tuple[list[str], list[np.ndarray], list[str]]:
    """The real photos used by the export checks: ``extra`` (e.g. bus.jpg) + scikit-image's COCO-like ones.

    Returns:
        (names, images, license statements). Raises ``ModuleNotFoundError`` naming the extra without
        scikit-image.
    """
    photos = real_photos(list(COCO_LIKE))
    names = [n for n, _ in extra] + [p.name for p in photos]
    images = [im for _, im in extra] + [p.image for p in photos]
    licenses = ["supplied by the caller" for _ in extra] + [f"{p.name}: {p.license}" for p in photos]
    return names, images, licenses
