"""ONNX export for cpu, gpu and edge runtimes, parity-checked, and the onnxruntime wrapper.

``export.export_onnx(model, target=...)`` writes a checked file; ``export.OnnxModel(path)`` runs one as a
drop-in for the PyTorch model. Names load lazily so that ``import export`` stays cheap.
"""
from __future__ import annotations

import importlib
from typing import Any

_LAZY: dict[str, str] = {
    "export_onnx": "export.onnx_export",
    "ExportResult": "export.onnx_export",
    "TARGETS": "export.onnx_export",
    "OnnxModel": "export.runtime",
    "ParityReport": "export.parity",
    "TOLERANCES": "export.parity",
    "EDGE_TOLERANCES": "export.parity",
    "ExportError": "export.errors",
    "ParityError": "export.errors",
    "OnnxModelError": "export.errors",
    "EXPORTER": "export.trace",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'export' has no attribute {name!r}")
