"""The edge (int8) parity check: the task metric before and after quantization, on held-out data.

Held out means disjoint from the calibration data: the ``val`` split of the dataset whose ``train``
split calibrated (the synthetic set by default), the images after the calibration ones when a dataset
object was given for calibration alone, or the corpus's held-out chunks for language models.
When the metric cannot be measured (no labelled data that matches the model's classes, or a fixed batch
the evaluator cannot fill) the report says why and the numeric differences stay the only evidence.
"""
from __future__ import annotations

import logging
import math
from typing import Any

from zoo.export.accuracy import DETECTION_METRIC, LM_METRIC, accuracy_change, detection_accuracy, lm_accuracy
from zoo.export.families import DETECTION, GraphSpec
from zoo.export.parity import ParityReport

logger = logging.getLogger(__name__)


def edge_accuracy(report: ParityReport, ort_model: Any, spec: GraphSpec, *, calibration: Any, eval_data: Any,
                  eval_size: int, batch: int | str, calibration_size: int, progress: bool = False) -> None:
    """Fill ``report.accuracy``, ``value`` and ``passed`` (or a note saying why it was not measured)."""
    measured = (_detection(ort_model, spec, calibration, eval_data, eval_size, batch, report.notes, calibration_size,
                           progress) if spec.task == DETECTION else
                _lm(ort_model, spec, calibration, eval_data, eval_size, batch, report.notes, progress))
    if measured is None:
        logger.warning("edge export: accuracy change not measured: %s", "; ".join(report.notes))
        return
    torch_side, onnx_side, description, size = measured
    change = accuracy_change(spec.task, torch_side, onnx_side)
    metric = DETECTION_METRIC if spec.task == DETECTION else LM_METRIC
    report.accuracy = {"metric": metric, "torch": torch_side, "onnx": onnx_side, "change": change,
                       "data": description, "size": size}
    report.value = change
    report.passed = bool(math.isfinite(change) and change <= report.tolerance)


def _detection(ort_model: Any, spec: GraphSpec, calibration: Any, eval_data: Any, eval_size: int, batch: int | str,
               notes: list[str], calibration_size: int, progress: bool) -> tuple[dict, dict, str, int] | None:
    from zoo.eval.datasets.base import DetectionDataset

    from zoo.export.calibration import _is_dataset_spec, detection_dataset, is_detection_dataset

    if eval_data is None and is_detection_dataset(calibration):
        # A dataset object is one split: hold out the images after those that calibrated.
        full, skip = calibration, calibration_size
    else:
        source = next((d for d in (eval_data, calibration) if d is not None and _is_dataset_spec(d)), None)
        full, skip = detection_dataset(source, "val"), 0
    nc = len(spec.reference.names) if getattr(spec.reference, "names", None) else None
    if nc is not None and nc != full.num_classes:
        notes.append(f"AP change not measured: the model predicts {nc} classes but the evaluation set "
                     f"({full.source or 'synthetic'}) has {full.num_classes}; pass eval_data (--data) labelled with "
                     "the model's classes")
        return None
    if len(full) <= skip:
        notes.append(f"AP change not measured: the calibration dataset has no images beyond the {skip} used to "
                     "calibrate; pass eval_data (--data) to measure it")
        return None
    if batch != "dynamic" and int(batch) > 1:
        notes.append(f"AP change not measured: the file takes batches of exactly {batch}; export with a dynamic "
                     "batch to evaluate it")
        return None
    records = full.records[skip:skip + eval_size]
    n = len(records)
    dataset = DetectionDataset(records, full.names, full.category_ids, source=full.source)
    h, w = (int(v) for v in spec.example.shape[2:])
    imgsz = max(h, w)
    val_batch = 1 if batch != "dynamic" else 8
    torch_side = detection_accuracy(spec.reference, dataset, imgsz=imgsz, batch=val_batch, progress=progress)
    onnx_side = detection_accuracy(ort_model, dataset, imgsz=imgsz, batch=val_batch, progress=progress)
    held_out = f"images {skip}..{skip + n - 1} (after the calibration images)" if skip else "val split"
    return torch_side, onnx_side, f"{full.source or 'synthetic'} {held_out}", n


def _lm(ort_model: Any, spec: GraphSpec, calibration: Any, eval_data: Any, eval_size: int, batch: int | str,
        notes: list[str], progress: bool) -> tuple[dict, dict, str, int] | None:
    from zoo.export.calibration import token_chunks

    T, vocab = int(spec.metadata["seq_len"]), int(spec.metadata["vocab_size"])
    source = eval_data if eval_data is not None else (calibration if isinstance(calibration, str) or
                                                      hasattr(calibration, "chunks") else None)
    chunks, note = token_chunks(source, "val", eval_size, T, vocab, seed=2)
    if note:
        notes.append(note)
    per_call = min(16, chunks.shape[0]) if batch == "dynamic" else int(batch)
    usable = chunks.shape[0] - chunks.shape[0] % per_call
    if usable == 0:
        notes.append(f"perplexity change not measured: fewer than {per_call} held-out chunks for the fixed batch")
        return None
    chunks = chunks[:usable]
    torch_side = lm_accuracy(spec.reference, chunks, batch=per_call, progress=progress)
    onnx_side = lm_accuracy(ort_model, chunks, batch=per_call, progress=progress)
    description = "given token chunks" if source is not None else ("stdlib corpus (byte-level) held-out split"
                                                                   if note is None else "seeded random tokens")
    return torch_side, onnx_side, description, usable
