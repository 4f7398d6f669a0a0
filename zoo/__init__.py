"""effzoo: a model zoo for efficient and private inference.

``import zoo`` is light: it fills the model registry (the families) and loads the heavy parts (FLOP counter,
task slices, trainer, exporters, benchmark) on first use of their names (PEP 562, the ``_LAZY`` table).
This facade is the top of the layering (ARCHITECTURE.md): nothing inside the package imports it.
"""
from __future__ import annotations

import importlib
from typing import Any

from zoo import models as _models  # noqa: F401  (importing the families fills the registry)
from zoo.core.errors import ZooError
from zoo.core.factory import create_model
from zoo.core.registry import ModelCard, list_models, model_info, register_model
from zoo.core.version import __version__

# Public name -> module that defines it; resolved lazily by __getattr__ (PEP 562).
_LAZY: dict[str, str] = {
    "predict": "zoo.tasks.detection.predict",
    "val": "zoo.tasks.detection.val",
    "Detections": "zoo.tasks.detection.detections",
    "explain": "zoo.tasks.detection.explain",
    "Explanation": "zoo.tasks.detection.explain",
    "count_flops": "zoo.flops",
    "count_nonlinear": "zoo.flops",
    "FlopResult": "zoo.flops",
    "NonlinearResult": "zoo.flops",
    "read_checkpoint": "zoo.core.checkpoint",
    "save_safetensors": "zoo.core.checkpoint",
    "attention_entropy": "zoo.models.pi_transformer.entropy",
    "EntropyRegularizer": "zoo.models.pi_transformer.entropy",
    "nonlinearity_census": "zoo.models.pi_transformer.census",
    "pi_cost": "zoo.models.pi_transformer.cost",
    "pi_measure": "zoo.mpc.measure",
    "PIMeasurement": "zoo.mpc.measure",
    "prepare_lm_data": "zoo.eval.lm_data",
    "evaluate_perplexity": "zoo.eval.lm",
    "evaluate_lm": "zoo.tasks.language.evaluate",
    "run_pi_study": "zoo.studies.pi_study",
    "measured_perplexity": "zoo.studies.pi_study",
    "train": "zoo.engine.api",
    "bench": "zoo.benchmark.run",
    "export_onnx": "zoo.export.onnx_export",
    "export_hf": "zoo.export.hf_export",
    "distill": "zoo.engine.distill",
    "OnnxModel": "zoo.runtime.onnx",
}

__all__ = ["ModelCard", "ZooError", "__version__", "create_model", "list_models", "model_info",
           "register_model", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'zoo' has no attribute {name!r}")
