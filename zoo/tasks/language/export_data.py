"""Calibration chunks and the held-out perplexity check of a language model's ``edge`` (int8) export.

Chunks are (T,) token ids. Default: the byte-level standard-library corpus (``train`` chunks calibrate,
``val`` chunks measure perplexity) when the model's vocabulary is the 256 byte ids; otherwise there is no
tokenizer to read text with, so seeded random tokens stand in (the result says so). Any (N, T) tensor,
dataset of (T,) tensors, ``LMData`` or iterable of token tensors works too. The checked number is the
relative perplexity increase, through the code ``zoo eval-lm`` runs.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
from torch import Tensor

from zoo.core.errors import ExportError
from zoo.eval.lm import evaluate_perplexity
from zoo.eval.lm_data import prepare_lm_data
from zoo.tasks.base.graph import GraphSpec

logger = logging.getLogger(__name__)

METRIC = "perplexity"
RANDOM_TOKENS_NOTE = ("no corpus for this vocabulary: calibrated and evaluated on seeded random tokens; pass "
                      "token batches for a meaningful perplexity change")


def token_chunks(data: Any, split: str, n: int, seq_len: int, vocab_size: int, *,
                 seed: int) -> tuple[Tensor, str | None]:
    """(n, T) int64 token chunks for ``split`` and a note when random tokens had to stand in."""
    if n < 1:
        raise ExportError(f"calibration/eval size must be at least 1 (got {n}).")
    if data is None:
        if vocab_size == 256:
            chunks = prepare_lm_data("stdlib", tokenizer="byte", progress=False).chunks(split, seq_len)
            return _stack_chunks(chunks, n, seq_len, vocab_size), None
        gen = torch.Generator().manual_seed(seed)
        logger.warning(RANDOM_TOKENS_NOTE)
        return torch.randint(0, vocab_size, (n, seq_len), generator=gen), RANDOM_TOKENS_NOTE
    if isinstance(data, str):  # a corpus spec ("stdlib", a folder, ...): readable without a tokenizer only as bytes
        if vocab_size != 256:
            raise ExportError(f"A corpus name ({data!r}) can only calibrate byte-level (256-token) models; this one "
                              f"has {vocab_size} tokens: pass tokenized chunks (an (N, T) tensor) from Python instead.")
        data = prepare_lm_data(data, tokenizer="byte", progress=False)
    if hasattr(data, "chunks"):  # a zoo.eval.lm_data.LMData
        return _stack_chunks(data.chunks(split, seq_len), n, seq_len, vocab_size), None
    return _stack_chunks(data, n, seq_len, vocab_size), None


def _stack_chunks(source: Any, n: int, seq_len: int, vocab_size: int) -> Tensor:
    """The first ``n`` (T,) chunks of an (N, T) tensor, a dataset of (T,) tensors or an iterable of tensors."""
    if isinstance(source, Tensor):
        items: Iterable[Any] = [source] if source.dim() == 2 else [source.view(1, -1)]
    elif hasattr(source, "__len__") and hasattr(source, "__getitem__"):
        items = (source[i] for i in range(min(n, len(source))))
    else:
        items = source
    rows: list[Tensor] = []
    for item in items:
        t = torch.as_tensor(np.asarray(item)) if not isinstance(item, Tensor) else item
        rows.extend(t.long().reshape(-1, t.shape[-1]).unbind(0))
        if len(rows) >= n:
            break
    if not rows:
        raise ExportError("The token data holds no chunks; pass an (N, T) tensor or an iterable of token tensors.")
    out = torch.stack(rows[:n])
    if out.shape[1] != seq_len:
        raise ExportError(f"Token chunks have length {out.shape[1]} but the export is for seq_len={seq_len}.")
    if int(out.min()) < 0 or int(out.max()) >= vocab_size:
        raise ExportError(f"Token ids must lie in [0, {vocab_size}) for this model (got {int(out.min())}.."
                          f"{int(out.max())}); tokenize with the model's tokenizer.")
    return out


def calibration_inputs(spec: GraphSpec, data: Any, n: int) -> list[Tensor]:
    """Calibration batches shaped like the graph's example input (each chunk repeated to the fixed batch)."""
    T, vocab = int(spec.metadata["seq_len"]), int(spec.metadata["vocab_size"])
    fixed = spec.example.shape[0]
    chunks, _ = token_chunks(data, "train", n, T, vocab, seed=1)
    return [c.view(1, -1).expand(fixed, -1).contiguous() for c in chunks]


def accuracy(model: Any, chunks: Tensor, *, batch: int = 16, progress: bool = False) -> dict[str, float]:
    """Perplexity (and mean CE in nats) of ``model`` on (N, T) token ``chunks``."""
    result = evaluate_perplexity(model, chunks, batch_size=batch, device=torch.device("cpu"), progress=progress)
    return {"perplexity": float(result.perplexity), "ce": float(result.ce), "tokens": float(result.tokens)}


def accuracy_change(torch_side: dict[str, float], exported: dict[str, float]) -> float:
    """Relative perplexity increase, ppl_exported / ppl_torch - 1."""
    return exported[METRIC] / torch_side[METRIC] - 1.0


def edge_accuracy(exported: Any, spec: GraphSpec, *, calibration: Any, eval_data: Any, eval_size: int,
                  batch: int | str, calibration_size: int, notes: list[str],
                  progress: bool = False) -> dict[str, Any] | None:
    """Perplexity of the PyTorch model and of ``exported`` on held-out chunks, or None (with a note)."""
    T, vocab = int(spec.metadata["seq_len"]), int(spec.metadata["vocab_size"])
    source = eval_data if eval_data is not None else (calibration if isinstance(calibration, str) or
                                                      hasattr(calibration, "chunks") else None)
    chunks, note = token_chunks(source, "val", eval_size, T, vocab, seed=2)
    if note:
        notes.append(note)
    per_call = min(16, chunks.shape[0]) if batch == "dynamic" else int(batch)
    usable = chunks.shape[0] - chunks.shape[0] % per_call
    if usable == 0:
        notes.append(f"perplexity change not measured: fewer than {per_call} held-out chunks for the fixed batch")
        return None
    chunks = chunks[:usable]
    torch_side = accuracy(spec.reference, chunks, batch=per_call, progress=progress)
    onnx_side = accuracy(exported, chunks, batch=per_call, progress=progress)
    description = "given token chunks" if source is not None else ("stdlib corpus (byte-level) held-out split"
                                                                   if note is None else "seeded random tokens")
    return {"metric": METRIC, "torch": torch_side, "onnx": onnx_side, "change": accuracy_change(torch_side, onnx_side),
            "data": description, "size": usable}
