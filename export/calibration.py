"""Calibration and accuracy data for the ``edge`` target, kept disjoint from each other.

Detectors: images from a detection dataset (default: the synthetic shapes set, ``train`` split for
calibration and ``val`` split for the accuracy check), letterboxed exactly as ``zoo.predict`` does
(:func:`zoo.tasks.detection.preprocess.preprocess_batch`), full square unless the graph has free height/width.
Any iterable of images (paths, (H, W, 3) uint8 arrays, (3, H, W) tensors) works for calibration too.

Language models: (T,)-token chunks. Default: the byte-level standard-library corpus of
:mod:`zoo.eval.lm_data` (``train`` chunks calibrate, ``val`` chunks measure perplexity) when the model's
vocabulary is the 256 byte ids; otherwise there is no tokenizer to read text with, so seeded random
token batches stand in (the result says so). Any (N, T) tensor, dataset of (T,) tensors or iterable of
token tensors works too.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from zoo.export.errors import ExportError

logger = logging.getLogger(__name__)

RANDOM_TOKENS_NOTE = ("no corpus for this vocabulary: calibrated and evaluated on seeded random tokens; pass "
                      "token batches for a meaningful perplexity change")


def detection_dataset(data: Any, split: str) -> Any:
    """``None``/"synthetic"/path/dataset -> a ``DetectionDataset`` (see ``zoo.eval.datasets.load_dataset``)."""
    from zoo.eval.datasets import load_dataset

    return load_dataset(data, split)


def is_detection_dataset(data: Any) -> bool:
    from zoo.eval.datasets.base import DetectionDataset

    return isinstance(data, DetectionDataset)


def _is_dataset_spec(data: Any) -> bool:
    """True for what ``zoo.eval.datasets.load_dataset`` reads (else ``data`` is images)."""
    if data is None or is_detection_dataset(data):
        return True
    if isinstance(data, (str, Path)):
        path = Path(data)
        return str(data) == "synthetic" or path.suffix.lower() in (".yaml", ".yml", ".json") or \
            (path.is_dir() and any((path / p).is_file() for p in ("annotations.json", "train/annotations.json")))
    return False


def calibration_images(data: Any, n: int, imgsz: tuple[int, int], stride: int, *, rect: bool = False) -> list[Tensor]:
    """Up to ``n`` letterboxed (1, 3, H, W) float inputs from ``data`` (default: synthetic ``train``).

    ``data`` is a dataset spec (``None``, "synthetic", a data YAML, COCO JSON, dataset folder or a
    ``DetectionDataset``: its ``train`` split is used) or images (a path, folder, glob, list of images).
    """
    from zoo.tasks.detection.predict import _expand_inputs, _to_rgb_array  # the predictor's own image readers
    from zoo.tasks.detection.preprocess import preprocess_batch

    if n < 1:
        raise ExportError(f"calibration_size must be at least 1 (got {n}).")
    if _is_dataset_spec(data):
        dataset = detection_dataset(data, "train")
        arrays = [dataset.load_image(i) for i in range(min(n, len(dataset)))]
    else:
        arrays = [_to_rgb_array(im)[0] for im in _expand_inputs(data)[:n]]
    if not arrays:
        raise ExportError("The calibration data holds no images; pass a dataset or a list of images.")
    size = imgsz[0] if imgsz[0] == imgsz[1] else imgsz
    return [preprocess_batch([a], size, stride=stride, rect=rect)[0] for a in arrays]


def token_chunks(data: Any, split: str, n: int, seq_len: int, vocab_size: int, *,
                 seed: int) -> tuple[Tensor, str | None]:
    """(n, T) int64 token chunks for ``split`` and a note when random tokens had to stand in."""
    if n < 1:
        raise ExportError(f"calibration/eval size must be at least 1 (got {n}).")
    if data is None:
        if vocab_size == 256:
            from zoo.eval.lm_data import prepare_lm_data

            chunks = prepare_lm_data("stdlib", tokenizer="byte", progress=False).chunks(split, seq_len)
            return _stack_chunks(chunks, n, seq_len, vocab_size), None
        gen = torch.Generator().manual_seed(seed)
        logger.warning(RANDOM_TOKENS_NOTE)
        return torch.randint(0, vocab_size, (n, seq_len), generator=gen), RANDOM_TOKENS_NOTE
    if isinstance(data, str):  # a corpus spec ("stdlib", a folder, ...): readable without a tokenizer only as bytes
        if vocab_size != 256:
            raise ExportError(f"A corpus name ({data!r}) can only calibrate byte-level (256-token) models; this one "
                              f"has {vocab_size} tokens: pass tokenized chunks (an (N, T) tensor) from Python instead.")
        from zoo.eval.lm_data import prepare_lm_data

        data = prepare_lm_data(data, tokenizer="byte", progress=False)
    if hasattr(data, "chunks"):  # an zoo.eval.lm_data.LMData
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
