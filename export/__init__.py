"""ONNX export for cpu, gpu and edge runtimes, parity-checked (orchestration layer).

``zoo.export.export_onnx(model, target=...)`` writes a checked file; ``zoo.export.OnnxModel(path)`` (from
:mod:`zoo.runtime.onnx`) runs one as a drop-in for the PyTorch model. What each task traces and checks
comes from its slice (``zoo.tasks.*.export_graph``); this package only traces, converts, checks and writes.
"""
from __future__ import annotations

from zoo.export.onnx_export import TARGETS, ExportResult, export_onnx
from zoo.export.parity import TOLERANCES, ParityReport
from zoo.export.trace import EXPORTER

from zoo.core.errors import ExportError, OnnxModelError, ParityError
from zoo.runtime.onnx import OnnxModel

__all__ = ["EXPORTER", "TARGETS", "TOLERANCES", "ExportError", "ExportResult", "OnnxModel", "OnnxModelError",
           "ParityError", "ParityReport", "export_onnx"]
