"""COCO box evaluation: the 12 standard stats and per-class AP, identical to pycocotools, fast.

Three backends compute pycocotools' accumulated precision/recall tables (see :mod:`zoo.eval.coco_backends`):
``"effzoo"`` (the default: pycocotools' algorithm re-done on numpy arrays, :mod:`zoo.eval.coco_engine`, bit-
identical to the reference and faster than faster-coco-eval), ``"pycocotools"`` (the reference) and
``"faster-coco-eval"`` (that package's classes; within ~1e-16 of the reference, see its runner). The 12
stats are taken from those tables with pycocotools' ``summarize`` rule, so ``max_dets`` other than 100 is
summarised correctly too.

Use :func:`evaluate` for files or dicts produced by any tool, or :class:`COCOEvaluator` to accumulate
a model's predictions image by image (contiguous class ids are mapped to the dataset's category ids).
"""
from __future__ import annotations

import importlib.util
import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from zoo.eval.coco_backends import (
    DetectionArrays,
    GroundTruthArrays,
    iou_thresholds,
    run_faster_coco_eval,
    run_pycocotools,
)
from zoo.eval.coco_engine import run_numpy
from zoo.eval.coco_format import read_json, validate_coco

from zoo.core.errors import DataError, did_you_mean

logger = logging.getLogger(__name__)

BACKENDS = ("effzoo", "faster-coco-eval", "pycocotools")  # fastest first
_BACKEND_MODULES = {"effzoo": "numpy", "faster-coco-eval": "faster_coco_eval", "pycocotools": "pycocotools"}
_RUNNERS = {"effzoo": run_numpy, "faster-coco-eval": run_faster_coco_eval, "pycocotools": run_pycocotools}
AREA_LABELS = ("all", "small", "medium", "large")


def stat_names(max_dets: Sequence[int] = (1, 10, 100)) -> tuple[str, ...]:
    """Names of the 12 stats, in pycocotools' ``stats`` order (AR names follow ``max_dets``)."""
    m = sorted(max_dets)
    return ("AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large",
            f"AR{m[0]}", f"AR{m[1]}", f"AR{m[2]}", "AR_small", "AR_medium", "AR_large")


STAT_NAMES = stat_names()


def available_backends() -> list[str]:
    """Installed backends, fastest first."""
    return [b for b in BACKENDS if importlib.util.find_spec(_BACKEND_MODULES[b]) is not None]


def resolve_backend(backend: str | None) -> str:
    """``None`` -> the fastest installed backend; a name is checked and must be installed."""
    installed = available_backends()
    if backend is None:
        if not installed:
            raise DataError("No COCO backend installed: pip install pycocotools (or faster-coco-eval).")
        return installed[0]
    if backend not in BACKENDS:
        raise ValueError(f"Unknown COCO backend {backend!r}; choose one of {', '.join(BACKENDS)}."
                         + did_you_mean(backend, BACKENDS))
    if backend not in installed:
        raise DataError(f"COCO backend {backend!r} is not installed: pip install {backend}.")
    return backend


def load_ground_truth(ground_truth: str | Path | Mapping[str, Any]) -> GroundTruthArrays:
    """Read (if a path), validate and index a COCO instances ground truth."""
    source = str(ground_truth) if isinstance(ground_truth, (str, Path)) else "ground truth"
    data = read_json(ground_truth, "ground-truth file") if isinstance(ground_truth, (str, Path)) else ground_truth
    validate_coco(data, source, check_bounds=False)
    if not data["images"] or not data["annotations"]:
        what = "no images" if not data["images"] else "no annotations"
        raise DataError(f"{source}: the ground truth has {what}, so every COCO stat would be -1 (undefined); "
                        "evaluate on a set with labelled objects.")
    anns = data["annotations"]
    bbox = np.array([a["bbox"] for a in anns], dtype=np.float64).reshape(-1, 4)
    area = np.array([a.get("area", a["bbox"][2] * a["bbox"][3]) for a in anns], dtype=np.float64)
    # pycocotools needs 'area' and 'iscrowd' on every annotation; fill them (area from the box, not crowd)
    # on copies, never in place.
    if any("area" not in a or "iscrowd" not in a for a in anns):
        anns = [a if "area" in a and "iscrowd" in a else
                {**a, "area": a.get("area", a["bbox"][2] * a["bbox"][3]), "iscrowd": a.get("iscrowd", 0)}
                for a in anns]
    if any(a["id"] == 0 for a in anns):
        # pycocotools records a match as the matched annotation's id, so a match to id 0 would read as
        # 'unmatched': the runners get ids 1..G (ids carry no other meaning in the metric).
        anns = [{**a, "id": i} for i, a in enumerate(anns, start=1)]
    data = {**data, "annotations": anns}
    return GroundTruthArrays(
        data=data,
        image_ids=np.unique(np.array([im["id"] for im in data["images"]], dtype=np.int64)),
        category_ids=np.unique(np.array([c["id"] for c in data["categories"]], dtype=np.int64)),
        ann_ids=np.array([a["id"] for a in data["annotations"]], dtype=np.int64),
        ann_image=np.array([a["image_id"] for a in anns], dtype=np.int64),
        ann_category=np.array([a["category_id"] for a in anns], dtype=np.int64),
        ann_bbox=bbox, ann_area=area,
        ann_crowd=np.array([bool(a.get("iscrowd", 0)) for a in anns], dtype=bool),
    )


def _check_detections(dets: DetectionArrays, gt: GroundTruthArrays, source: str) -> None:
    """Every result must name a known image and category and carry a finite box and score."""
    checks = [
        (~np.isin(dets.image_id, gt.image_ids), "image_id", "is not an image of the ground truth"),
        (~np.isin(dets.category_id, gt.category_ids), "category_id", "is not a category of the ground truth"),
        (~np.isfinite(dets.bbox).all(1), "bbox", "is not 4 finite numbers"),
        ((dets.bbox[:, 2] < 0) | (dets.bbox[:, 3] < 0), "bbox", "has a negative size"),
        (~np.isfinite(dets.score), "score", "is not a finite number"),
    ]
    for bad, name, what in checks:
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            value = dets.bbox[i].tolist() if name == "bbox" else getattr(dets, name)[i].item()
            raise DataError(f"{source}: result #{i}: field {name!r} = {value!r} {what} "
                            f"({int(bad.sum())} such results).")


def load_detections(detections: str | Path | Sequence[Mapping[str, Any]] | DetectionArrays,
                    gt: GroundTruthArrays) -> DetectionArrays:
    """COCO results (a JSON path or a list of ``{image_id, category_id, bbox, score}``) as checked arrays."""
    source = str(detections) if isinstance(detections, (str, Path)) else "detections"
    if isinstance(detections, DetectionArrays):
        dets = detections
    else:
        results = read_json(detections, "detections file") if isinstance(detections, (str, Path)) else detections
        if not isinstance(results, (list, tuple)):
            raise DataError(f"{source}: expected a list of COCO results {{image_id, category_id, bbox, score}}.")
        try:
            dets = DetectionArrays(
                image_id=np.array([r["image_id"] for r in results], dtype=np.int64),
                category_id=np.array([r["category_id"] for r in results], dtype=np.int64),
                bbox=np.array([r["bbox"] for r in results], dtype=np.float64).reshape(-1, 4),
                score=np.array([r["score"] for r in results], dtype=np.float64),
            )
        except (KeyError, TypeError, ValueError) as err:
            bad = next((i for i, r in enumerate(results) if not _result_ok(r)), None)
            raise DataError(f"{source}: result #{bad}: needs image_id, category_id, bbox [x, y, w, h] and score "
                            f"({err}).") from err
    _check_detections(dets, gt, source)
    return dets


def _result_ok(r: Any) -> bool:
    try:
        return (isinstance(r, Mapping) and all(k in r for k in ("image_id", "category_id", "bbox", "score"))
                and len(r["bbox"]) == 4 and all(isinstance(v, (int, float)) for v in r["bbox"]))
    except TypeError:
        return False


def summarize(precision: np.ndarray, recall: np.ndarray, max_dets: Sequence[int] = (1, 10, 100)) -> np.ndarray:
    """The 12 stats from accumulated tables, with pycocotools' ``_summarize`` rule (mean of entries > -1)."""
    m = sorted(max_dets)
    thr = iou_thresholds()

    def one(ap: bool, iou: float | None = None, area: str = "all", dets: int = m[-1]) -> float:
        a, k = AREA_LABELS.index(area), m.index(dets)
        s = precision[..., a, k] if ap else recall[..., a, k]
        if iou is not None:
            s = s[np.where(iou == thr)[0]]
        valid = s[s > -1]
        return -1.0 if valid.size == 0 else float(np.mean(valid))

    return np.array([one(True), one(True, 0.5), one(True, 0.75), one(True, area="small"),
                     one(True, area="medium"), one(True, area="large"), one(False, dets=m[0]),
                     one(False, dets=m[1]), one(False, dets=m[2]), one(False, area="small"),
                     one(False, area="medium"), one(False, area="large")])


def per_class_ap(precision: np.ndarray, category_ids: np.ndarray, names: Mapping[int, str]
                 ) -> dict[str, dict[str, float]]:
    """AP (.50:.95) and AP50 per category (area all, largest max_dets); -1 where a class has no ground truth."""
    out = {}
    for k, cat in enumerate(category_ids.tolist()):
        s = precision[:, :, k, 0, -1]
        s50 = s[0]
        out[names.get(cat, str(cat))] = {
            "category_id": cat,
            "AP": float(np.mean(s[s > -1])) if (s > -1).any() else -1.0,
            "AP50": float(np.mean(s50[s50 > -1])) if (s50 > -1).any() else -1.0,
        }
    return out


@dataclass
class CocoEvalResult:
    """Outcome of one evaluation: ``stats`` (12 named values), ``per_class`` and bookkeeping."""

    stats: dict[str, float]
    per_class: dict[str, dict[str, float]] = field(default_factory=dict)
    backend: str = ""
    num_images: int = 0
    num_detections: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"stats": self.stats, "per_class": self.per_class, "backend": self.backend,
                "num_images": self.num_images, "num_detections": self.num_detections}

    def table(self) -> str:
        """pycocotools-style summary lines, then per-class AP."""
        rows = [f"{name:<10} {value:7.4f}" for name, value in self.stats.items()]
        if self.per_class:
            rows.append(f"{'class':<20} {'AP':>7} {'AP50':>7}")
            rows += [f"{n[:20]:<20} {v['AP']:7.4f} {v['AP50']:7.4f}" for n, v in self.per_class.items()]
        return "\n".join(rows)


def _run(gt: GroundTruthArrays, dets: DetectionArrays, backend: str | None, max_dets: Sequence[int]
         ) -> CocoEvalResult:
    if len(max_dets) != 3 or any(int(m) < 1 for m in max_dets) or len(set(max_dets)) != 3:
        raise ValueError(f"max_dets must be three different positive counts like (1, 10, 100), got "
                         f"{tuple(max_dets)} (the stats AR1/AR10/AR100 are named after them).")
    name = resolve_backend(backend)
    start = time.perf_counter()
    precision, recall = _RUNNERS[name](gt, dets, max_dets)
    stats = summarize(precision, recall, max_dets)
    names = {c["id"]: str(c.get("name", c["id"])) for c in gt.data["categories"]}
    return CocoEvalResult(stats=dict(zip(stat_names(max_dets), stats.tolist())),
                          per_class=per_class_ap(precision, gt.category_ids, names), backend=name,
                          num_images=len(gt.image_ids), num_detections=len(dets),
                          seconds=time.perf_counter() - start)


def evaluate(ground_truth: str | Path | Mapping[str, Any], detections: str | Path | Sequence[Mapping[str, Any]],
             backend: str | None = None, *, max_dets: Sequence[int] = (1, 10, 100)) -> dict[str, float]:
    """The 12 COCO box stats of ``detections`` against ``ground_truth``.

    Args:
        ground_truth: COCO instances JSON path or the loaded dict.
        detections: COCO results JSON path or the loaded list ``[{image_id, category_id, bbox, score}]``.
        backend: ``"effzoo"``, ``"pycocotools"``, ``"faster-coco-eval"`` or ``None`` (fastest installed, i.e.
            ``"effzoo"``).
        max_dets: the three detection caps (AR1/AR10/AR100 and every AP use the last).

    Returns:
        ``{"AP": ..., "AP50": ..., ..., "AR_large": ...}`` in pycocotools' ``stats`` order.
    """
    gt = load_ground_truth(ground_truth)
    return _run(gt, load_detections(detections, gt), backend, max_dets).stats


def evaluate_full(ground_truth: str | Path | Mapping[str, Any], detections: Any, backend: str | None = None,
                  *, max_dets: Sequence[int] = (1, 10, 100)) -> CocoEvalResult:
    """Like :func:`evaluate` but returns per-class AP and bookkeeping too."""
    gt = load_ground_truth(ground_truth)
    return _run(gt, load_detections(detections, gt), backend, max_dets)


class COCOEvaluator:
    """Accumulate a model's detections image by image, then compute COCO stats.

    Args:
        ground_truth: COCO dict or path (e.g. ``dataset.coco_ground_truth()``).
        category_ids: contiguous class id -> dataset category id (default: the ground truth's category
            ids in increasing order, i.e. class i = i-th category).
        backend: as in :func:`evaluate`.
        max_dets: as in :func:`evaluate`.
    """

    def __init__(self, ground_truth: str | Path | Mapping[str, Any], *, category_ids: Sequence[int] | None = None,
                 backend: str | None = None, max_dets: Sequence[int] = (1, 10, 100)) -> None:
        self.gt = load_ground_truth(ground_truth)
        self.category_ids = np.asarray(category_ids if category_ids is not None else self.gt.category_ids,
                                       dtype=np.int64)
        self.backend = resolve_backend(backend)
        self.max_dets = tuple(max_dets)
        self.reset()

    def reset(self) -> None:
        self._parts: list[tuple[np.ndarray, ...]] = []

    def add(self, image_id: int, boxes_xyxy: Any, scores: Any, labels: Any) -> None:
        """Record one image's detections: boxes (N, 4) xyxy in original pixels, scores (N,), labels (N,)."""
        boxes = np.asarray(_numpy(boxes_xyxy), dtype=np.float64).reshape(-1, 4)
        labels = np.asarray(_numpy(labels), dtype=np.int64).reshape(-1)
        if labels.size and (labels.min() < 0 or labels.max() >= len(self.category_ids)):
            raise ValueError(f"Class id {int(labels.max())} has no category: the evaluator maps "
                             f"{len(self.category_ids)} classes. Pass category_ids for this model.")
        xywh = np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1)
        self._parts.append((np.full(len(labels), int(image_id), dtype=np.int64), self.category_ids[labels], xywh,
                            np.asarray(_numpy(scores), dtype=np.float64).reshape(-1)))

    def add_detections(self, image_id: int, detections: Any) -> None:
        """Record a :class:`zoo.tasks.detection.Detections` (or anything with ``boxes``/``scores``/``labels``)."""
        self.add(image_id, detections.boxes, detections.scores, detections.labels)

    def detections(self) -> DetectionArrays:
        """Everything recorded so far, as arrays in recording order."""
        if not self._parts:
            return DetectionArrays(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 4)), np.zeros(0))
        img, cat, box, score = (np.concatenate(p) for p in zip(*self._parts))
        return DetectionArrays(img, cat, box, score)

    def compute(self) -> CocoEvalResult:
        """COCO stats of everything recorded (images never given detections count as empty)."""
        dets = load_detections(self.detections(), self.gt)
        return _run(self.gt, dets, self.backend, self.max_dets)


def _numpy(x: Any) -> Any:
    if hasattr(x, "detach"):
        return x.detach().cpu().numpy()
    return x


def is_nan_or_missing(value: float) -> bool:
    """True for the -1 pycocotools reports when a stat has no ground truth (or NaN)."""
    return value < 0 or math.isnan(value)
