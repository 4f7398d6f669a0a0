"""The edge (int8) parity check: the task metric before and after quantization, on held-out data.

Held out means disjoint from the calibration data; which data that is, and how the metric is computed,
is the task slice's (``TaskSpec.edge_accuracy``: the detection slice's COCO AP drop, the language slice's
relative perplexity increase). When the metric cannot be measured (no labelled data that matches the
model's classes, or a fixed batch the evaluator cannot fill) the report says why and the numeric
differences stay the only evidence.
"""
from __future__ import annotations

import logging
import math
from typing import Any

from zoo.export.parity import ParityReport

from zoo.tasks.base.graph import GraphSpec
from zoo.tasks.base.spec import TaskSpec

logger = logging.getLogger(__name__)


def edge_accuracy(report: ParityReport, exported: Any, spec: GraphSpec, task: TaskSpec, *, calibration: Any,
                  eval_data: Any, eval_size: int, batch: int | str, calibration_size: int,
                  progress: bool = False) -> None:
    """Fill ``report.accuracy``, ``value`` and ``passed`` (or a note saying why it was not measured)."""
    measured = task.edge_accuracy(exported, spec, calibration=calibration, eval_data=eval_data, eval_size=eval_size,
                                  batch=batch, calibration_size=calibration_size, notes=report.notes,
                                  progress=progress)
    if measured is None:
        logger.warning("edge export: accuracy change not measured: %s", "; ".join(report.notes))
        return
    report.accuracy = measured
    if "tolerance" in measured and report.tolerance == task.edge_tolerance:  # the check's own default bound
        report.tolerance = float(measured["tolerance"])
    report.metric = str(measured.get("check_metric", report.metric))
    report.value = measured["change"]
    report.passed = bool(math.isfinite(report.value) and report.value <= report.tolerance)
