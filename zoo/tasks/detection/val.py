"""``zoo.val``: run a detector over a labelled dataset and score it with the COCO evaluator.

Settings follow the official validator (conf 0.001, NMS IoU 0.7, max_det 300). Images are letterboxed
one batch at a time with the predictor's rule (minimal "rect" padding when a batch shares one shape,
else the full square), so a batch of 1 reproduces ``zoo.predict`` exactly. The model is duck-typed as in
:mod:`zoo.tasks.detection.predict` (eager LeYOLO, a fused copy, or an ONNX Runtime wrapper).
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from zoo.core.errors import DataError
from zoo.core.factory import create_model
from zoo.core.sizes import model_input_size
from zoo.eval.coco import COCOEvaluator
from zoo.eval.datasets import load_dataset
from zoo.tasks.detection.postprocess import non_max_suppression, scale_boxes
from zoo.tasks.detection.predict import DEFAULT_IMGSZ, model_names, model_stride, run_model
from zoo.tasks.detection.preprocess import preprocess_batch

logger = logging.getLogger(__name__)


def val_full(
    model: Callable[[torch.Tensor], Any],
    data: Any = None,
    *,
    imgsz: int | None = None,
    batch: int = 8,
    conf: float = 0.001,
    iou: float = 0.7,
    max_det: int = 300,
    backend: str | None = None,
    split: str = "val",
    progress: bool = False,
):
    """Evaluate ``model`` on ``data`` and return the full :class:`zoo.eval.coco.CocoEvalResult`.

    Args:
        model: a detector returning (B, 4 + nc, A) decoded predictions (see :mod:`zoo.tasks.detection.predict`).
        data: ``None``/"synthetic", a data YAML, a COCO JSON, a dataset folder or a ``DetectionDataset``.
        imgsz: letterbox size; default the model's own input size (its card's, or the size a loaded
            checkpoint was trained at; see ``zoo.core.sizes``).
        batch: images per forward pass.
        conf, iou, max_det: post-processing (official validation settings by default).
        backend: COCO backend (``None``: fastest exact one).
        split: dataset split to read.
        progress: tqdm bar on stderr.
    """
    if batch < 1:
        raise ValueError(f"batch must be a positive number of images (got {batch}).")
    dataset = load_dataset(data, split)
    if imgsz is None:
        imgsz = model_input_size(model, default=DEFAULT_IMGSZ)
    names = model_names(model)
    if names and len(names) != dataset.num_classes:
        raise DataError(f"The model predicts {len(names)} classes but {dataset.source or 'the dataset'} has "
                        f"{dataset.num_classes} ({', '.join(dataset.names[:5])}...); evaluate a model trained on it.")
    evaluator = COCOEvaluator(dataset.coco_ground_truth(), category_ids=dataset.category_ids, backend=backend,
                              max_dets=(1, 10, 100))  # COCO's caps; max_det already bounds each image's list
    stride = model_stride(model)
    records = dataset.records
    with tqdm(total=len(records), desc="val", unit="img", disable=not progress) as bar:
        for start in range(0, len(records), batch):
            idx = range(start, min(start + batch, len(records)))
            images = [dataset.load_image(i) for i in idx]
            x, geometry = preprocess_batch(images, imgsz, stride=stride)
            out = run_model(model, x)
            if out.shape[1] - 4 != dataset.num_classes:
                raise DataError(f"The model predicts {out.shape[1] - 4} classes but the dataset has "
                                f"{dataset.num_classes}; evaluate a model trained on it.")
            dets = non_max_suppression(out, conf=conf, iou=iou, max_det=max_det)
            for i, det, info in zip(idx, dets, geometry):
                det = det.cpu()
                boxes = scale_boxes(det[:, :4], tuple(x.shape[2:]), info.orig_hw)
                evaluator.add(records[i].image_id, boxes, det[:, 4], det[:, 5].long())
            bar.update(len(images))
    return evaluator.compute()


def val(model: Callable[[torch.Tensor], Any] | str, data: Any = None, *, weights: str | Path | None = None,
        **kwargs: Any) -> dict[str, float]:
    """COCO stats (``AP``, ``AP50``, ... ``AR_large``) of ``model`` on ``data``; see :func:`val_full` for options.

    ``model`` may be a registry name, built with ``weights`` (or untrained with the dataset's class count).
    """
    if isinstance(model, str):
        model = build_for_data(model, weights, data, kwargs.get("split", "val"))
    return val_full(model, data, **kwargs).stats


def build_for_data(name: str, weights: str | Path | None, data: Any, split: str = "val") -> torch.nn.Module:
    """Create ``name`` from ``weights``; without weights, size its head to the dataset's classes."""
    if weights is not None:
        return create_model(name, checkpoint_path=weights).eval()
    dataset = load_dataset(data, split)
    return create_model(name, num_classes=dataset.num_classes, names=dataset.names).eval()
