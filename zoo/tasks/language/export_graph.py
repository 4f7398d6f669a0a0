"""What a language model exports: (B, T) int64 tokens -> (B, T, V) full-sequence logits for a fixed T.

The traced module is the folded PI-GPT (``fold()``: weight/spectral norm, temperatures and identity FFNs
written into plain weights), returning one plain tensor (no ``PIOutput``, no attention maps). Logits are
compared as they are (no normalisation).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from zoo.core.errors import ExportError
from zoo.core.sizes import model_input_size
from zoo.tasks.base.graph import GraphSpec, batch_sizes, inference_copy, reference_model


class _LogitsGraph(nn.Module):
    """Tokens (B, T) -> logits (B, T, V) as one plain tensor."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, tokens: Tensor) -> Tensor:
        out = self.model(tokens)
        return out.logits if hasattr(out, "logits") else out


def lm_graph_spec(model: nn.Module, *, size: int | None, batch: int | str, dynamic_hw: bool = False,
                  nms: object = None) -> GraphSpec:
    """The ``GraphSpec`` of a language model at T = ``size`` (default: the model's context length)."""
    if dynamic_hw or nms is not None:
        raise ExportError("imgsz, dynamic_hw and nms are for detectors; a language model takes seq_len.")
    ref, deploy = reference_model(model), inference_copy(model)
    cfg = deploy.config
    T = int(size) if size is not None else model_input_size(ref)
    limit = min(int(cfg.n_pos), int(cfg.context_length)) if cfg.attn_temperature != "none" else int(cfg.n_pos)
    if T < 2 or T > limit:
        raise ExportError(f"seq_len={T} must be between 2 and {limit} for {getattr(model, 'model_name', 'this model')}"
                          "; build it with a larger context_length for longer sequences.")
    dynamic_batch, trace_batch, check_batch = batch_sizes(batch)
    gen = torch.Generator().manual_seed(0)
    checks = [torch.randint(0, cfg.vocab_size, (check_batch, T), generator=gen),
              torch.arange(check_batch * T).remainder(cfg.vocab_size).view(check_batch, T)]
    axes = {"tokens": {0: "batch"}, "logits": {0: "batch"}} if dynamic_batch else {}
    metadata = {"seq_len": str(T), "vocab_size": str(cfg.vocab_size)}
    return GraphSpec(reference=ref, module=_LogitsGraph(deploy).eval(),
                     example=torch.zeros(trace_batch, T, dtype=torch.int64), input_name="tokens",
                     trace_outputs=["logits"], saved_outputs=["logits"], tail_inputs=[], main_output="logits",
                     dynamic_axes=axes, check_inputs=checks, metadata=metadata)
