"""The detection task: letterbox, decode + NMS, predict, COCO val, the training task, the export graph.

Modules: ``preprocess`` / ``resize`` (official letterbox), ``postprocess`` (NMS, box mapping),
``detections`` (the result type), ``predict`` (``zoo.predict``), ``explain*`` (``zoo.explain``: CAMs through
grad-cam, their targets, metrics and overlays), ``val`` (``zoo.val``), ``train*`` and
``augment`` (the training task the engine runs), ``export_graph`` / ``nms_graph`` / ``export_data`` (what
the exporter traces, checks and calibrates with). Importing the package registers its :class:`TaskSpec`.
"""
from __future__ import annotations

import torch

from zoo.tasks.base.spec import TaskSpec, register_task
from zoo.tasks.detection import export_data
from zoo.tasks.detection.export_graph import detection_graph_spec
from zoo.tasks.detection.train import DetectionTask


def _images(size: int, batch: int) -> torch.Tensor:
    return torch.zeros(batch, 3, size, size)


SPEC = register_task(TaskSpec(
    name=DetectionTask.name, title="detector", size_arg="imgsz", size_unit="px", input_name="images",
    quality_metric="mAP50-95", example_input=_images, size_kwargs=lambda card, size: {}, trace_on_meta=False,
    train_task=DetectionTask, graph_spec=detection_graph_spec, calibration_inputs=export_data.calibration_inputs,
    edge_accuracy=export_data.edge_accuracy, edge_metric="AP drop", edge_tolerance=0.05,
))
