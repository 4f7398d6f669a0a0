"""Task accuracy of a model, PyTorch or ONNX, measured with the project's own evaluators.

Why: an int8 export is judged by what users lose, mAP or perplexity, not by a max-abs-diff that
quantization always breaks. Both sides go through exactly the code ``zoo val`` and ``zoo eval-lm`` use
(:func:`zoo.tasks.detection.val.val_full`, :func:`zoo.eval.lm.evaluate_perplexity`), so the change is the change a
user would see.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

logger = logging.getLogger(__name__)

DETECTION_METRIC = "AP"  # COCO mAP50-95, pycocotools' stats[0]
LM_METRIC = "perplexity"


def detection_accuracy(model: Callable[[Tensor], Any], dataset: Any, *, imgsz: int, batch: int = 8,
                       progress: bool = False) -> dict[str, float]:
    """COCO ``AP`` (mAP50-95) and ``AP50`` of ``model`` on ``dataset`` at the official val settings."""
    from zoo.tasks.detection.val import val_full

    result = val_full(model, dataset, imgsz=imgsz, batch=batch, progress=progress)
    return {"AP": float(result.stats["AP"]), "AP50": float(result.stats["AP50"])}


def lm_accuracy(model: Callable[[Tensor], Any], chunks: Tensor, *, batch: int = 16,
                progress: bool = False) -> dict[str, float]:
    """Perplexity (and mean CE in nats) of ``model`` on (N, T) token ``chunks``."""
    from zoo.eval.lm import evaluate_perplexity

    result = evaluate_perplexity(model, chunks, batch_size=batch, device=torch.device("cpu"), progress=progress)
    return {"perplexity": float(result.perplexity), "ce": float(result.ce), "tokens": float(result.tokens)}


def accuracy_change(task: str, torch_side: dict[str, float], onnx_side: dict[str, float]) -> float:
    """The loss an export causes, as the number the edge tolerance bounds.

    Detection: AP drop in absolute mAP units (0.01 = one mAP point; negative = the export scored higher).
    Language modelling: relative perplexity increase, ppl_onnx / ppl_torch - 1.
    """
    if task == "detection":
        return torch_side[DETECTION_METRIC] - onnx_side[DETECTION_METRIC]
    return onnx_side[LM_METRIC] / torch_side[LM_METRIC] - 1.0
