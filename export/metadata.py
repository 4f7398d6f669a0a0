"""Writing the self-description every exported file carries in its ONNX ``metadata_props``.

Why: an ONNX file outlives the Python session that wrote it. The runtime wrapper needs the class names,
stride and input size to plug into ``zoo.predict`` / ``zoo val`` without the registry, and a deployment
review needs to see which model, target and effzoo version made the file and how close it measured to
PyTorch. Values are strings (ONNX's rule); structured ones are JSON.

Keys: ``effzoo_schema``, ``model``, ``task``, ``target``, ``precision``, ``io_dtype``, ``batch``
("dynamic" or an int), ``opset``, ``exporter``, ``effzoo_version``, ``torch_version``, ``parity`` (JSON
of the :class:`~zoo.export.parity.ParityReport`), and per task ``imgsz`` ([h, w]), ``stride``, ``input_size``
(the model's own default size), ``names``
({id: name}), ``dynamic_hw``, ``nms`` (settings or null) for detectors; ``seq_len``, ``vocab_size`` for
language models. Reading it back is :mod:`zoo.runtime.metadata`'s job (the runtime needs it without the
exporter).
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import onnx
import torch

from zoo.core.version import __version__
from zoo.runtime.metadata import SCHEMA


def build_metadata(*, model_name: str, task: str, target: str, precision: str, io_dtype: str, batch: int | str,
                   opset: int, exporter: str, parity: Mapping[str, Any] | None,
                   extra: Mapping[str, str]) -> dict[str, str]:
    """All metadata strings of one export (``extra`` = the task's own keys, already encoded)."""
    meta = {
        "effzoo_schema": SCHEMA,
        "model": model_name,
        "task": task,
        "target": target,
        "precision": precision,
        "io_dtype": io_dtype,
        "batch": str(batch),
        "opset": str(opset),
        "exporter": exporter,
        "effzoo_version": __version__,
        "torch_version": torch.__version__,
        "parity": json.dumps(parity, allow_nan=False) if parity is not None else "null",
    }
    meta.update(extra)
    return meta


def write_metadata(model: onnx.ModelProto, meta: Mapping[str, str]) -> None:
    """Set ``meta`` on ``model`` (replacing keys that exist) and mark effzoo as the producer."""
    current = {p.key: p.value for p in model.metadata_props}
    current.update({k: str(v) for k, v in meta.items()})
    del model.metadata_props[:]
    for key, value in current.items():
        model.metadata_props.add(key=key, value=value)
    model.producer_name, model.producer_version = "effzoo", __version__
