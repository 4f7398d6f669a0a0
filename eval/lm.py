"""Language-model evaluation: perplexity = exp(mean next-token cross-entropy) on held-out T-token chunks.

Spec pi_transformer.md §4.1 / §12: every chunk of T tokens gives T - 1 predictions (logits at position i
predict token i + 1); the mean CE in nats is taken over all predictions of all chunks, and the report
states how many chunks and tokens it averaged. The model is any callable ``tokens (B, T) -> logits
(B, T, V)``: a PIGPT, a Hugging Face model output (``.logits``), or an exported ONNX model through the
ONNX runtime wrapper (numpy outputs are accepted; numpy inputs with ``numpy_inputs=True``).
"""
from __future__ import annotations

import contextlib
import math
import os
import sys
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from zoo.core.errors import DataError


@dataclass(frozen=True)
class PerplexityResult:
    """What ``evaluate_perplexity`` measured.

    Attributes:
        perplexity: exp(ce).
        ce: mean next-token cross-entropy in nats.
        tokens: predictions averaged (chunks * (T - 1)): the token count the CE is a mean over.
        input_tokens: tokens fed to the model (chunks * T).
        chunks: evaluated T-token chunks.
        seq_len: T.
        batch_size: chunks per forward.
    """

    perplexity: float
    ce: float
    tokens: int
    input_tokens: int
    chunks: int
    seq_len: int
    batch_size: int

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("perplexity", "ce"):  # JSON has no NaN/inf: a diverged model reports null
            if not math.isfinite(out[key]):
                out[key] = None
        return out


def logits_of(output: Any) -> Tensor:
    """The (B, T, V) logits of a model output: a tensor, a numpy array, ``.logits``, or the first of a tuple."""
    if hasattr(output, "logits"):
        output = output.logits
    elif isinstance(output, (tuple, list)):
        output = output[0]
    if isinstance(output, np.ndarray):
        output = torch.from_numpy(output)
    if not isinstance(output, Tensor) or output.dim() != 3:
        raise ValueError(f"The model must return logits of shape (B, T, V); got {type(output).__name__}"
                         f"{tuple(output.shape) if hasattr(output, 'shape') else ''}.")
    return output


def ce_sum(model: Callable[[Any], Any], tokens: Tensor, *, numpy_inputs: bool = False) -> tuple[float, int]:
    """(sum of next-token CE in nats, number of predictions) for one (B, T) batch, summed in float64."""
    out = logits_of(model(tokens.cpu().numpy() if numpy_inputs else tokens))
    B, T = tokens.shape
    if out.shape[:2] != (B, T):
        raise ValueError(f"Logits shape {tuple(out.shape)} does not match tokens {(B, T)}.")
    V = out.shape[-1]
    targets = tokens[:, 1:].reshape(-1).to(out.device)
    loss = F.cross_entropy(out[:, :-1].reshape(-1, V).float(), targets, reduction="none")
    return float(loss.double().sum()), int(targets.numel())


def _batches(chunks: Dataset | Tensor, batch_size: int) -> Iterable[Tensor]:
    if isinstance(chunks, Tensor):
        if chunks.dim() != 2:
            raise ValueError(f"chunks must be (N, T) token ids, got shape {tuple(chunks.shape)}.")
        return chunks.split(batch_size)
    return DataLoader(chunks, batch_size=batch_size, shuffle=False, num_workers=0)


@torch.no_grad()
def evaluate_perplexity(model: Callable[[Any], Any], chunks: Dataset | Tensor, *, batch_size: int = 32,
                        device: str | torch.device | None = None, numpy_inputs: bool = False,
                        autocast: Callable[[], contextlib.AbstractContextManager] | None = None,
                        progress: bool = False) -> PerplexityResult:
    """Perplexity of ``model`` on ``chunks``.

    Args:
        model: ``nn.Module`` (put in eval mode for the call and restored) or any callable
            ``(B, T) int64 -> (B, T, V)`` logits (tensor, numpy, ``.logits`` or tuple).
        chunks: (N, T) token tensor, or a dataset of (T,) tensors (e.g. ``LMData.chunks("val", T)``).
        batch_size: chunks per forward.
        device: where inputs go (default: the module's parameters' device, else CPU).
        numpy_inputs: pass int64 numpy arrays instead of tensors (ONNX runtime sessions).
        autocast: context factory wrapped around each forward (mixed precision on CUDA).
        progress: tqdm bar on stderr.

    Raises:
        DataError: no chunks to evaluate.
    """
    if batch_size <= 0:
        raise ValueError(f"batch_size={batch_size} must be positive.")
    n = chunks.shape[0] if isinstance(chunks, Tensor) else len(chunks)
    if n == 0:
        raise DataError("No T-token chunks to evaluate: the held-out text is shorter than one chunk; use more text "
                        "or a smaller sequence length.")
    if device is None:
        param = next(model.parameters(), None) if isinstance(model, nn.Module) else None
        device = param.device if param is not None else torch.device("cpu")
    device = torch.device(device)
    was_training = model.training if isinstance(model, nn.Module) else None
    if isinstance(model, nn.Module):
        model.eval()
    total, count, seqs, T = 0.0, 0, 0, 0
    try:
        bar = tqdm(_batches(chunks, batch_size), total=math.ceil(n / batch_size), desc="perplexity",
                   disable=not progress, file=sys.stderr, dynamic_ncols=True)
        for batch in bar:
            T = batch.shape[1]
            with (autocast or contextlib.nullcontext)():
                s, c = ce_sum(model, batch.to(device), numpy_inputs=numpy_inputs)
            total, count, seqs = total + s, count + c, seqs + batch.shape[0]
    finally:
        if was_training is not None:
            model.train(was_training)
    ce = total / count if count else float("nan")
    ppl = float("nan") if math.isnan(ce) else (math.exp(ce) if ce < 700 else float("inf"))
    return PerplexityResult(perplexity=ppl, ce=ce, tokens=count,
                            input_tokens=seqs * T, chunks=seqs, seq_len=T, batch_size=batch_size)


def find_tokenizer_file(weights: str | os.PathLike[str]) -> Path | None:
    """``tokenizer.json`` saved next to a run's weights (``weights/../tokenizer.json`` or beside the file)."""
    w = Path(weights)
    for folder in (w.parent, w.parent.parent):
        if (folder / "tokenizer.json").is_file():
            return folder / "tokenizer.json"
    return None
