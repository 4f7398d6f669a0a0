"""Reading the effzoo metadata of an exported file (written by :mod:`zoo.export.metadata`).

Lives with the runtime, not the exporter, because running a file needs its class names, stride and
input size long after the exporter is gone. Values are strings in the file; structured ones are JSON.
"""
from __future__ import annotations

import ast
import json
from collections.abc import Mapping
from typing import Any

import onnx

SCHEMA = "effzoo.onnx/1"
JSON_KEYS = ("imgsz", "names", "dynamic_hw", "nms", "parity")
INT_KEYS = ("stride", "seq_len", "vocab_size", "opset", "input_size")
DEFAULT_DOMAINS = ("", "ai.onnx")
MIN_OPSET = 17  # LayerNormalization (opset 17) is what the transformers need; older edge runtimes stop here


def opset_of(model: onnx.ModelProto) -> int | None:
    """The default-domain opset of ``model`` (None when the file declares none)."""
    for entry in model.opset_import:
        if entry.domain in DEFAULT_DOMAINS:
            return int(entry.version)
    return None


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
        try:
            return ast.literal_eval(text)  # ultralytics writes Python reprs; literal_eval never runs code
        except (ValueError, SyntaxError):
            return text


def read_metadata(model: onnx.ModelProto) -> dict[str, Any]:
    """Decoded metadata of an in-memory model."""
    return decode_metadata({p.key: p.value for p in model.metadata_props})
