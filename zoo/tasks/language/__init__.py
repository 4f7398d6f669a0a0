"""The language-modelling task: the training task and its reports, perplexity of files, the export graph.

Modules: ``train`` / ``train_config`` / ``objective`` / ``report`` (the training task the engine runs),
``evaluate`` (``zoo eval-lm``: a trained checkpoint or exported file on a corpus), ``export_graph`` /
``export_data`` (what the exporter traces, checks and calibrates with). Importing the package registers
its :class:`TaskSpec`.
"""
from __future__ import annotations

from typing import Any

import torch

from zoo.tasks.base.spec import TaskSpec, register_task
from zoo.tasks.language import export_data
from zoo.tasks.language.export_graph import lm_graph_spec
from zoo.tasks.language.train import LMTask


def _tokens(size: int, batch: int) -> torch.Tensor:
    return torch.zeros(batch, size, dtype=torch.long)


def _covering(card: Any, size: int) -> dict[str, Any]:
    return {"context_length": max(size, card.input_size)}  # the position table must cover T


SPEC = register_task(TaskSpec(
    name=LMTask.name, title="language model", size_arg="seq_len", size_unit="tok", input_name="tokens",
    quality_metric="perplexity", example_input=_tokens, size_kwargs=_covering, trace_on_meta=True,
    train_task=LMTask, graph_spec=lm_graph_spec, calibration_inputs=export_data.calibration_inputs,
    edge_accuracy=export_data.edge_accuracy, edge_metric="perplexity increase", edge_tolerance=0.10,
))
