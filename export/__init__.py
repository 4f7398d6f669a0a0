"""ONNX export for cpu, gpu and edge runtimes, parity-checked, and the onnxruntime wrapper.

``zoo.export.export_onnx(model, target=...)`` writes a checked file; ``zoo.export.OnnxModel(path)`` runs one as a
drop-in for the PyTorch model. Names load lazily so that ``import export`` stays cheap.
"""
from __future__ import annotations

import importlib
from typing import Any

_LAZY: dict[str, str] = {
    "export_onnx": "zoo.export.onnx_export",
    "ExportResult": "zoo.export.onnx_export",
    "TARGETS": "zoo.export.onnx_export",
    "OnnxModel": "zoo.export.runtime",
    "ParityReport": "zoo.export.parity",
    "TOLERANCES": "zoo.export.parity",
    "EDGE_TOLERANCES": "zoo.export.parity",
    "ExportError": "zoo.export.errors",
    "ParityError": "zoo.export.errors",
    "OnnxModelError": "zoo.export.errors",
    "EXPORTER": "zoo.export.trace",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'export' has no attribute {name!r}")
