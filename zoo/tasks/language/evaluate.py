"""``zoo eval-lm``: the perplexity of a trained checkpoint or an exported file on a corpus split.

The metric itself is :func:`zoo.eval.lm.evaluate_perplexity` (any callable ``tokens -> logits``); this
module resolves what a user names on the command line: the architecture, the weights (effzoo
``.safetensors``, an ``.onnx`` export run by onnxruntime or an ``.xml`` IR run by OpenVINO), the tokenizer saved with the run, the corpus.
"""
from __future__ import annotations

import os
from typing import Any

import torch

from zoo.core.distributed import resolve_device
from zoo.core.factory import create_model
from zoo.eval.lm import evaluate_perplexity, find_tokenizer_file
from zoo.eval.lm_data import prepare_lm_data
from zoo.models.pi_transformer.variants import config_for_name
from zoo.runtime.exported import file_runtime, open_exported


def evaluate_lm(name: str, weights: str | os.PathLike[str], *, data: str = "stdlib", split: str = "val",
                tokenizer: str | None = None, seq_len: int | None = None, batch_size: int = 32,
                max_chunks: int = 0, val_fraction: float = 0.02, val_data: str = "",
                cache_dir: str | os.PathLike[str] | None = None, device: str | None = None,
                progress: bool = False) -> dict[str, Any]:
    """Perplexity of a trained model (effzoo ``.safetensors``, an exported ``.onnx`` or ``.xml``) on a corpus split.

    Args:
        name: registry name of the architecture (``pi-gpt2-tiny-sm-ln-g``).
        weights: effzoo safetensors written by ``zoo train``, or an ONNX file exported from it.
        data: corpus spec (default the standard library; see ``zoo.eval.corpus``).
        split: ``val`` (held-out, default) or ``train``.
        tokenizer: ``byte``, ``pretokenized`` or a ``tokenizer.json``; default: byte-level for a 256-id model,
            else the ``tokenizer.json`` saved with the run.
        seq_len: T (default the model's context length).
        max_chunks: evaluate a fixed-seed sample of this many chunks (0 = all).

    Returns:
        ``PerplexityResult.to_dict()`` plus ``model``, ``weights``, ``corpus``, ``split``.
    """
    dev = resolve_device(device)
    exported = file_runtime(weights) is not None  # an .onnx (onnxruntime) or .xml (OpenVINO) export
    if exported:
        model: Any = open_exported(weights)
        cfg = config_for_name(name)
        vocab, T0 = cfg.vocab_size, model.seq_len or cfg.context_length  # the length the file was exported for
    else:
        model = create_model(name, checkpoint_path=weights).to(dev)
        vocab, T0 = model.config.vocab_size, model.config.context_length
    T = seq_len or T0
    if not 2 <= T <= T0:  # a chunk of T tokens predicts T - 1 of them: T = 1 predicts none (perplexity NaN)
        raise ValueError(f"seq_len={T} is out of range; {name} evaluates chunks of 2..{T0} tokens.")
    if tokenizer is None:
        found = find_tokenizer_file(weights)
        if vocab == 256 and found is None:
            tokenizer = "byte"
        elif found is not None:
            tokenizer = str(found)
        else:
            raise ValueError(f"{name} has vocab_size={vocab} and no tokenizer.json was found next to {weights}; "
                             "pass --tokenizer FILE (the one it was trained with).")
    lm = prepare_lm_data(data, tokenizer=tokenizer, val_data=val_data, val_fraction=val_fraction,
                         cache_dir=cache_dir, progress=progress)
    if lm.vocab_size > vocab:
        raise ValueError(f"Tokenizer {tokenizer} has {lm.vocab_size} ids but {name} was built with vocab_size={vocab}; "
                         "use the tokenizer the model was trained with.")
    chunks = lm.chunks(split, T)
    if max_chunks:
        chunks = chunks.subset(max_chunks)
    result = evaluate_perplexity(model, chunks, batch_size=batch_size, device=torch.device("cpu") if exported else dev,
                                 progress=progress)
    return {"model": name, "weights": str(weights), "corpus": lm.corpus, "split": split, **result.to_dict()}
