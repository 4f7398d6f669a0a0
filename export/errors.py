"""Errors of the ONNX exporter and runtime; ``ZooError`` subclasses, so the CLI prints them as one line.

Why a file of their own: both the exporter (a parity check that fails) and the runtime (a file that
cannot be run) raise them, and callers such as the benchmark catch them by class.
"""
from __future__ import annotations

from zoo.core.errors import ZooError


class ExportError(ZooError, ValueError):
    """An export that cannot be done as asked (bad target, option or model)."""


class ParityError(ExportError):
    """The exported file does not compute what the PyTorch model computes; nothing was written."""


class OnnxModelError(ZooError, ValueError):
    """An ONNX file that cannot be run: unreadable, corrupt, or built for an unsupported opset."""
