"""The detection task: LeYOLO (any registered detector with the same head) on top of the training engine.

Data comes from ``zoo.eval.datasets.load_dataset`` (synthetic set, data YAML, COCO JSON or folder), is
augmented by :mod:`zoo.tasks.detection.train_data`, and trained with the v8 loss of ``models/leyolo/loss.py``.
Validation runs the predictor's letterbox + NMS (``zoo.tasks.detection``) on each rank's share of the validation
images, gathers the detections on rank 0 and scores them with the COCO evaluator (``zoo.eval.coco``).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from zoo.core import distributed as D
from zoo.core.checkpoint import save_safetensors
from zoo.core.distributed import DistInfo
from zoo.core.errors import DataError
from zoo.core.factory import create_model
from zoo.eval.coco import COCOEvaluator
from zoo.eval.datasets import load_dataset
from zoo.models.leyolo.loss import DetectionLoss
from zoo.tasks.base.training import StepContext, Task
from zoo.tasks.detection.postprocess import non_max_suppression, scale_boxes
from zoo.tasks.detection.preprocess import preprocess_batch
from zoo.tasks.detection.train_config import DetectionTrainConfig
from zoo.tasks.detection.train_data import DetectionTrainSet, check_labels, collate, describe

logger = logging.getLogger(__name__)

# results.csv column -> COCO stat (zoo.eval.coco.stat_names)
METRICS = {"metrics/mAP50-95": "AP", "metrics/mAP50": "AP50", "metrics/mAP75": "AP75", "metrics/AR100": "AR100"}


class DetectionTask(Task):
    """Train a detector whose train-mode forward returns the raw head maps (see ``models/leyolo``)."""

    name = "detection"
    config_class = DetectionTrainConfig
    loss_names = ("box_loss", "cls_loss", "dfl_loss")
    epoch_keys = True

    def __init__(self, config: DetectionTrainConfig) -> None:
        super().__init__(config)
        self.config: DetectionTrainConfig = config

    # -- set-up ---------------------------------------------------------------------------------
    def setup(self, dist: DistInfo) -> None:
        cfg = self.config
        self.dist = dist
        self.train_data = _load(load_dataset, cfg.data, "train")
        self.val_data = _load(load_dataset, cfg.data, cfg.val_split) if cfg.val else None
        self.model = self._create_model()
        nc = self.model.num_classes
        check_labels(self.train_data, nc, f"{cfg.data} (train)")
        if self.val_data is not None:
            check_labels(self.val_data, nc, f"{cfg.data} ({cfg.val_split})")
        head = self.model.head
        self.loss_fn = DetectionLoss(nc, [float(s) for s in self.model.stride], head.reg_max, box=cfg.box,
                                     cls=cfg.cls, dfl=cfg.dfl)
        logger.info("train data %s, val data %s", describe(self.train_data),
                    describe(self.val_data) if self.val_data is not None else "off")

    def _create_model(self) -> nn.Module:
        cfg = self.config
        if cfg.weights:  # the checkpoint fixes the classes; labels are then checked against them
            model = create_model(cfg.model, checkpoint_path=cfg.weights)
            if list(model.names[: self.train_data.num_classes]) != list(self.train_data.names):
                logger.warning("class names of %s differ from the dataset's; training keeps the checkpoint's names",
                               cfg.weights)
        else:
            model = create_model(cfg.model, num_classes=self.train_data.num_classes, names=self.train_data.names)
        for attr in ("head", "stride", "num_classes"):
            if not hasattr(model, attr):
                raise ValueError(f"{cfg.model} has no {attr!r}; the detection trainer needs a LeYOLO-style detector.")
        return model.train()

    def build_model(self) -> nn.Module:
        if self.config.channels_last:  # conv weights NHWC; the EMA copy and checkpoints follow (saved contiguous)
            self.model = self.model.to(memory_format=torch.channels_last)
        return self.model

    def train_dataset(self) -> Dataset:
        self.train_set = DetectionTrainSet(self.train_data, self.config, self.config.epochs)
        return self.train_set

    def collate(self, items: list[Any]) -> Any:
        return collate(items)

    def example_input(self, device: torch.device) -> Tensor:
        return torch.zeros(1, 3, 64, 64, device=device)

    def on_epoch_start(self, epoch: int, ctx: StepContext) -> None:
        # The engine knows the run's epoch count (it differs from `epochs` when max_steps is set); the
        # loader's workers copy the dataset after this hook, so they see it.
        self.train_set.epochs = ctx.epochs
        if self.config.mosaic and epoch == ctx.epochs - self.config.close_mosaic and self.config.close_mosaic:
            logger.info("closing mosaic for the last %d epochs", self.config.close_mosaic)

    # -- training -------------------------------------------------------------------------------
    def training_step(self, model: nn.Module, batch: Any, ctx: StepContext) -> tuple[Tensor, Tensor]:
        images, targets = batch
        x = images.to(ctx.device, non_blocking=True).float().div_(255.0)  # (B, 3, S, S) in [0, 1]
        if self.config.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with ctx.autocast():
            feats = model(x)  # 3 raw maps (B, 4*reg_max + nc, S/s, S/s)
        world = ctx.dist.world_size
        if world > 1:  # normalise by the global target-score sum and batch: DDP mean == concatenated batch
            loss, items = self.loss_fn(feats, targets.to(ctx.device),
                                       normalizer=lambda s: D.all_reduce_sum(s).clamp(min=1.0) / world,
                                       batch_size=x.shape[0] * world)
        else:
            loss, items = self.loss_fn(feats, targets.to(ctx.device))
        return loss, items

    # -- validation -----------------------------------------------------------------------------
    @torch.no_grad()
    def validate(self, model: nn.Module, ctx: StepContext) -> dict[str, float]:
        """COCO metrics of ``model`` on the validation split; images are split over ranks, gathered on 0."""
        cfg, data = self.config, self.val_data
        assert data is not None
        was_training = model.training
        model.eval()
        mine = list(range(ctx.dist.rank, len(data), ctx.dist.world_size))
        batch = max(1, 2 * cfg.batch // ctx.dist.world_size)
        found: list[tuple[int, np.ndarray, np.ndarray, np.ndarray]] = []
        for start in range(0, len(mine), batch):
            idx = mine[start:start + batch]
            x, geometry = preprocess_batch([data.load_image(i) for i in idx], cfg.imgsz, stride=32)
            with ctx.autocast():
                out = model(x.to(ctx.device))
            out = out[0] if isinstance(out, (tuple, list)) else out
            for i, det, info in zip(idx, non_max_suppression(out.float(), conf=cfg.conf, iou=cfg.iou,
                                                             max_det=cfg.max_det), geometry):
                det = det.cpu()
                boxes = scale_boxes(det[:, :4], tuple(x.shape[2:]), info.orig_hw)
                found.append((data.records[i].image_id, boxes.numpy(), det[:, 4].numpy(), det[:, 5].long().numpy()))
        model.train(was_training)
        gathered = D.all_gather_objects(found)
        metrics: dict[str, float] | None = None
        if ctx.dist.is_main:
            metrics = self._score([item for part in gathered for item in part])
        return D.broadcast_object(metrics)

    def _score(self, detections: list[tuple[int, np.ndarray, np.ndarray, np.ndarray]]) -> dict[str, float]:
        data = self.val_data
        evaluator = COCOEvaluator(data.coco_ground_truth(), category_ids=data.category_ids)
        for image_id, boxes, scores, labels in detections:
            evaluator.add(image_id, boxes, scores, labels)
        stats = evaluator.compute().stats
        return {col: max(float(stats[key]), 0.0) for col, key in METRICS.items()}  # -1 (no gt) -> 0

    def fitness(self, metrics: dict[str, float]) -> float:
        """ultralytics' fitness: 0.1 * mAP50 + 0.9 * mAP50-95."""
        return 0.1 * metrics["metrics/mAP50"] + 0.9 * metrics["metrics/mAP50-95"]

    def save_weights(self, model: nn.Module, path: Path, *, metrics: dict[str, float]) -> None:
        save_safetensors(model, path, name=self.config.model, input_size=self.config.imgsz,
                         source=f"zoo train {path.parent.parent} (data {self.config.data})")


def _load(load_dataset: Any, data: str, split: str) -> Any:
    """``load_dataset`` with the empty-dataset check the trainer needs."""
    dataset = load_dataset(data or "synthetic", split)
    if len(dataset) == 0:
        raise DataError(f"The {split} split of {data!r} has zero images; point --data at a dataset with images "
                        f"in its {split} split.")
    return dataset
