"""effzoo: a model zoo for efficient and private inference.

``import zoo`` is light: heavy parts (FLOP counter, predictor, exporters) load on first use.
"""
from __future__ import annotations

import importlib
from typing import Any

from zoo.errors import ZooError
from zoo.registry import ModelCard, create_model, list_models, model_info, register_model

__version__ = "0.1.0"

# Public name -> module that defines it; resolved lazily by __getattr__ (PEP 562).
_LAZY: dict[str, str] = {
    "predict": "zoo.detect.predict",
    "val": "zoo.detect.val",
    "Detections": "zoo.detect.detections",
    "count_flops": "zoo.flops",
    "count_nonlinear": "zoo.flops",
    "FlopResult": "zoo.flops",
    "NonlinearResult": "zoo.flops",
    "read_checkpoint": "zoo.checkpoint",
    "save_safetensors": "zoo.checkpoint",
    "attention_entropy": "models.pi_transformer.entropy",
    "EntropyRegularizer": "models.pi_transformer.entropy",
    "nonlinearity_census": "models.pi_transformer.census",
    "pi_cost": "models.pi_transformer.cost",
    "prepare_lm_data": "eval.lm_data",
    "evaluate_perplexity": "eval.lm",
    "evaluate_lm": "eval.lm",
    "run_pi_study": "eval.pi_study",
    "measured_perplexity": "eval.pi_study",
    "train": "zoo.engine.api",
    "bench": "zoo.benchmark.run",
    "export_onnx": "export.onnx_export",
    "OnnxModel": "export.runtime",
}

__all__ = ["ModelCard", "ZooError", "__version__", "create_model", "list_models", "model_info",
           "register_model", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'zoo' has no attribute {name!r}")
