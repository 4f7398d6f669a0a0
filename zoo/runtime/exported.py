"""One entry point for exported files: the runtime a file needs, and the wrapper that runs it.

``zoo predict``, ``zoo val``, ``zoo eval-lm`` and ``zoo bench`` accept an ONNX file or an OpenVINO IR
wherever they accept a checkpoint; which runtime runs it follows from the file's suffix (``.onnx`` ->
onnxruntime, ``.xml`` -> OpenVINO) unless ``--runtime`` says otherwise, and a contradiction is an
error, never a silent switch. Both wrappers share one interface (:class:`zoo.runtime.onnx.OnnxModel`).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from zoo.core.errors import OnnxModelError
from zoo.runtime.onnx import OnnxModel
from zoo.runtime.openvino import OpenVinoModel

RUNTIMES = ("torch", "onnx", "openvino")
FILE_RUNTIMES = {".onnx": "onnx", ".xml": "openvino"}  # suffix -> the runtime that runs it
_MAKE = {"onnx": "zoo export MODEL --weights CHECKPOINT", "openvino": "zoo export MODEL --target openvino"}


def file_runtime(path: str | os.PathLike[str] | None) -> str | None:
    """``onnx`` / ``openvino`` for an exported file, None for anything else (a checkpoint)."""
    return None if path is None else FILE_RUNTIMES.get(Path(path).suffix.lower())


def resolve_runtime(runtime: str | None, weights: str | os.PathLike[str] | None) -> str:
    """The explicit ``runtime`` (checked against the file), else the one the weights file's suffix implies.

    Raises:
        ValueError: an unknown runtime (lists the valid ones), or one that cannot run ``weights``.
    """
    if runtime is not None and runtime not in RUNTIMES:
        raise ValueError(f"Unknown runtime {runtime!r}; choose one of {', '.join(RUNTIMES)}.")
    implied = file_runtime(weights)
    if runtime is None:
        return implied or "torch"
    if runtime == "torch" and implied is not None:
        raise ValueError(f"{weights} is an exported {implied} file: run it with --runtime {implied} (or pass a PyTorch "
                         "checkpoint).")
    if runtime != "torch" and weights is not None and implied != runtime:
        suffix = next(s for s, r in FILE_RUNTIMES.items() if r == runtime)
        raise ValueError(f"--runtime {runtime} needs an exported {suffix} file as --weights (got {weights}); create one "
                         f"with {_MAKE[runtime]}.")
    return runtime


def open_exported(path: str | os.PathLike[str], **kwargs: Any) -> OnnxModel:
    """An ``OpenVinoModel`` for a ``.xml`` IR, else an ``OnnxModel``."""
    if file_runtime(path) == "openvino":
        return OpenVinoModel(path, **kwargs)
    return OnnxModel(path, **kwargs)


def open_detector(path: str | os.PathLike[str], model_name: str | None = None, *,
                  num_classes: int | None = None, **kwargs: Any) -> OnnxModel:
    """An exported detector (ONNX or IR) ready for ``zoo.predict`` / ``zoo val``; refuses files that cannot serve.

    Raises:
        OnnxModelError: not a detector, an end-to-end (NMS) file, or exported from another model (the
            message names the field that differs: model, class count).
    """
    model = open_exported(path, **kwargs)
    exported = model.metadata.get("model")
    if not model.takes_images:
        raise OnnxModelError(f"{path} is a {model.task} model, not a detector.")
    if model_name and not exported:  # another tool's file: its classes, size and decoding are unknown
        raise OnnxModelError(f"{path} has no effzoo metadata, so nothing says it is {model_name!r} (class names, "
                             "input size, output layout); export it with zoo export, or call OnnxModel directly.")
    if model_name and exported != model_name:
        raise OnnxModelError(f"{path} was exported from {exported!r}, not {model_name!r} (field 'model' differs); "
                             f"pass {exported!r} as MODEL.")
    if num_classes is not None and model.names and len(model.names) != num_classes:
        raise OnnxModelError(f"{path} predicts {len(model.names)} classes but {num_classes} are expected (field "
                             "'names' differs); export the checkpoint trained on this data.")
    if model.end_to_end:
        raise OnnxModelError(f"{path} has NMS built in (exported with --nms); zoo predict/val apply their own NMS: "
                             "export without --nms for them, or call OnnxModel.detect().")
    return model
