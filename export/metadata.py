"""The self-description every exported file carries in its ONNX ``metadata_props``.

Why: an ONNX file outlives the Python session that wrote it. The runtime wrapper needs the class names,
stride and input size to plug into ``zoo.predict`` / ``zoo val`` without the registry, and a deployment
review needs to see which model, target and effzoo version made the file and how close it measured to
PyTorch. Values are strings (ONNX's rule); structured ones are JSON.

Keys: ``effzoo_schema``, ``model``, ``task``, ``target``, ``precision``, ``io_dtype``, ``batch``
("dynamic" or an int), ``opset``, ``exporter``, ``effzoo_version``, ``torch_version``, ``parity`` (JSON
of the :class:`~zoo.export.parity.ParityReport`), and per task ``imgsz`` ([h, w]), ``stride``, ``names``
({id: name}), ``dynamic_hw``, ``nms`` (settings or null) for detectors; ``seq_len``, ``vocab_size`` for
language models.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import onnx

SCHEMA = "effzoo.onnx/1"
JSON_KEYS = ("imgsz", "names", "dynamic_hw", "nms", "parity")
INT_KEYS = ("stride", "seq_len", "vocab_size", "opset")


def build_metadata(*, model_name: str, task: str, target: str, precision: str, io_dtype: str, batch: int | str,
                   opset: int, exporter: str, parity: Mapping[str, Any] | None,
                   extra: Mapping[str, str]) -> dict[str, str]:
    """All metadata strings of one export (``extra`` = the task's own keys, already encoded)."""
    import torch

    import zoo

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
        "effzoo_version": zoo.__version__,
        "torch_version": torch.__version__,
        "parity": json.dumps(parity, allow_nan=False) if parity is not None else "null",
    }
    meta.update(extra)
    return meta


def write_metadata(model: onnx.ModelProto, meta: Mapping[str, str]) -> None:
    """Set ``meta`` on ``model`` (replacing keys that exist) and mark effzoo as the producer."""
    import zoo

    current = {p.key: p.value for p in model.metadata_props}
    current.update({k: str(v) for k, v in meta.items()})
    del model.metadata_props[:]
    for key, value in current.items():
        model.metadata_props.add(key=key, value=value)
    model.producer_name, model.producer_version = "effzoo", zoo.__version__


def decode_metadata(raw: Mapping[str, str]) -> dict[str, Any]:
    """Metadata strings -> Python values (JSON keys decoded, ints parsed); unknown keys stay strings.

    Files from other tools (e.g. an ultralytics export, whose ``names``/``imgsz``/``stride`` are Python
    literals) decode on a best-effort basis: a value that does not parse stays a string.
    """
    out: dict[str, Any] = dict(raw)
    for key in JSON_KEYS:
        if key in out:
            out[key] = _loads(out[key])
    for key in INT_KEYS:
        if key in out:
            try:
                out[key] = int(out[key])
            except ValueError:
                pass
    names = out.get("names")
    if isinstance(names, dict):
        out["names"] = {int(k): str(v) for k, v in names.items()}
    return out


def _loads(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        import ast

        try:
            return ast.literal_eval(text)  # ultralytics writes Python reprs; literal_eval never runs code
        except (ValueError, SyntaxError):
            return text


def read_metadata(model: onnx.ModelProto) -> dict[str, Any]:
    """Decoded metadata of an in-memory model."""
    return decode_metadata({p.key: p.value for p in model.metadata_props})
