"""The engines behind :mod:`zoo.eval.coco`, each returning pycocotools' accumulated tables.

Every engine takes prepared arrays and returns ``precision`` (T, R, K, A, M) and ``recall`` (T, K, A, M)
exactly as ``COCOeval.accumulate`` lays them out; :mod:`zoo.eval.coco` computes the 12 stats from them one
way for all. ``effzoo`` (numpy, :mod:`zoo.eval.coco_engine`) and ``pycocotools`` agree bit for bit;
``faster-coco-eval`` (the package's own classes) agrees to ~1e-16, see :func:`run_faster_coco_eval`.
"""
from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass
class GroundTruthArrays:
    """A validated COCO ground truth as arrays (annotation order kept: it decides matching ties)."""

    data: dict[str, Any]  # the COCO dict, each annotation with an 'area' (filled from the box if absent)
    image_ids: np.ndarray  # int64 (I,) sorted
    category_ids: np.ndarray  # int64 (K,) sorted
    ann_ids: np.ndarray  # int64 (G,)
    ann_image: np.ndarray  # int64 (G,) image ids
    ann_category: np.ndarray  # int64 (G,)
    ann_bbox: np.ndarray  # float64 (G, 4) x, y, w, h
    ann_area: np.ndarray  # float64 (G,)
    ann_crowd: np.ndarray  # bool (G,)


@dataclass
class DetectionArrays:
    """COCO results as arrays, in input order (ids are 1 + position, as ``loadRes`` assigns them)."""

    image_id: np.ndarray  # int64 (D,)
    category_id: np.ndarray  # int64 (D,)
    bbox: np.ndarray  # float64 (D, 4) x, y, w, h
    score: np.ndarray  # float64 (D,)

    def __len__(self) -> int:
        return int(self.score.shape[0])

    def to_results(self) -> list[dict[str, Any]]:
        """Plain COCO result dicts (what other tools read and write)."""
        return [{"image_id": i, "category_id": c, "bbox": b, "score": s} for i, c, b, s in
                zip(self.image_id.tolist(), self.category_id.tolist(), self.bbox.tolist(), self.score.tolist())]


def iou_thresholds() -> np.ndarray:
    """pycocotools' IoU thresholds .50:.05:.95, built the same way so ``== 0.5`` / ``== 0.75`` hold."""
    return np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)


def run_pycocotools(gt: GroundTruthArrays, dets: DetectionArrays, max_dets: Sequence[int]
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Reference path: pycocotools ``COCO`` + ``loadRes`` + ``COCOeval`` (its prints are swallowed)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = gt.data
        coco_gt.createIndex()
        if len(dets):
            coco_dt = coco_gt.loadRes(dets.to_results())
        else:  # loadRes([]) fails in pycocotools; an empty result set is still a valid evaluation
            coco_dt = COCO()
            coco_dt.dataset = {"images": list(gt.data["images"]), "categories": list(gt.data["categories"]),
                               "annotations": []}
            coco_dt.createIndex()
        ev = COCOeval(coco_gt, coco_dt, "bbox")
        ev.params.maxDets = sorted(int(m) for m in max_dets)
        ev.evaluate()
        ev.accumulate()
    return np.asarray(ev.eval["precision"]), np.asarray(ev.eval["recall"])


def run_faster_coco_eval(gt: GroundTruthArrays, dets: DetectionArrays, max_dets: Sequence[int]
                         ) -> tuple[np.ndarray, np.ndarray]:
    """faster-coco-eval used as its authors intend (``COCO`` + ``loadRes`` + ``COCOeval_faster``).

    Its C++ accumulate leaves out pycocotools' ``+ eps`` in precision = tp / (tp + fp), so a few table
    entries (curves whose first true positive stands alone) are 1.0 instead of 1 - 2**-52; stats then
    differ from pycocotools by about 1e-16. The ``"effzoo"`` backend is the exact and faster choice.
    """
    from faster_coco_eval import COCO, COCOeval_faster

    quiet = lambda *args, **kwargs: None  # noqa: E731 - the package logs every step otherwise
    coco_gt = COCO(gt.data, print_function=quiet) if _accepts_print(COCO) else COCO(gt.data)
    coco_dt = coco_gt.loadRes(dets.to_results())
    ev = COCOeval_faster(coco_gt, coco_dt, "bbox", print_function=quiet)
    ev.params.maxDets = sorted(int(m) for m in max_dets)
    ev.evaluate()
    ev.accumulate()
    return np.asarray(ev.eval["precision"]), np.asarray(ev.eval["recall"])


def _accepts_print(cls: type) -> bool:
    import inspect

    return "print_function" in inspect.signature(cls.__init__).parameters
