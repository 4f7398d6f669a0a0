"""Cost of one model: parameters, paper-convention GFLOPs and nonlinearity census per input size, PI cost.

Everything comes from ``zoo.count_flops`` (one graph trace gives FLOPs, MACs and the census). Detectors are
traced for real (they are small, and ``paper`` fuses a copy first, as ultralytics does). Transformers are
built and traced on the ``meta`` device: the trace needs shapes, not values, so a GPT-2-small-sized
variant costs a second instead of allocating and initialising ~500 MB; ``tests/test_bench.py`` checks
that this gives exactly what a real model gives. The private-inference cost is ``zoo.pi_cost``: a
published 2PC measurement where one exists for that architecture, else the spec §8.3 additive estimate,
with its provenance.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from zoo.benchmark.measure import measured, reported, stopwatch
from zoo.core.factory import create_model
from zoo.core.registry import ModelCard
from zoo.flops import count_flops
from zoo.models.pi_transformer.cost import pi_cost
from zoo.models.pi_transformer.variants import FAMILY as PI_FAMILY
from zoo.tasks import get_task

logger = logging.getLogger(__name__)

FLOPS_METHOD = "zoo.count_flops(convention='paper', fused=True), batch 1"
PARAMS_METHOD = "sum(p.numel() for p in model.parameters()) of the registered configuration"


def example_input(card: ModelCard, size: int, device: str | torch.device = "cpu") -> torch.Tensor:
    """Batch-1 input of ``card``'s task at ``size`` (``TaskSpec.example_input``: images or token ids)."""
    return get_task(card.task).example_input(size, 1).to(device)


def cost_device(card: ModelCard) -> str:
    """``meta`` where the task's traces need shapes only (transformers), else ``cpu``."""
    return "meta" if get_task(card.task).trace_on_meta else "cpu"


def build_for_cost(card: ModelCard, size: int) -> nn.Module:
    """The registered model able to run ``size`` (``TaskSpec.size_kwargs``), on :func:`cost_device`."""
    with torch.device(cost_device(card)):
        return create_model(card.name, **get_task(card.task).size_kwargs(card, size))


def param_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def model_cost(card: ModelCard, sizes: Sequence[int] | None = None) -> dict[str, Any]:
    """``{"params", "cost": {size: {...}}, "pi_cost": {size: {...}}, "reported"}`` at ``sizes`` (default: the
    registered input sizes)."""
    sizes = list(sizes or card.input_sizes)
    out: dict[str, Any] = {"cost": {}}
    device = cost_device(card)
    with stopwatch() as elapsed:
        model = build_for_cost(card, card.input_size)
        n_params = param_count(model)
    out["params"] = measured(n_params, "parameters", PARAMS_METHOD + (" (built on the meta device)" if device == "meta"
                                                                       else ""), elapsed())
    for size in sizes:
        if size > card.input_size and get_task(card.task).size_kwargs(card, size):  # e.g. wpe must cover T
            model = build_for_cost(card, size)
        out["cost"][str(size)] = size_cost(card, model, size)
    if card.family == PI_FAMILY:
        out["pi_cost"] = {str(size): _pi_cost(card, size) for size in sizes}
    out["reported"] = reported_numbers(card)
    return out


def size_cost(card: ModelCard, model: nn.Module | None, size: int) -> dict[str, Any]:
    """GFLOPs, MACs and census of one forward at ``size`` (``model=None``: build it for ``size``)."""
    if model is None:
        model = build_for_cost(card, size)
    device = cost_device(card)
    with stopwatch() as elapsed:
        result = count_flops(model, example_input(card, size, device), convention="paper", fused=True)
    seconds = elapsed()
    method = FLOPS_METHOD + (", traced on the meta device (shapes only)" if device == "meta" else "")
    census = result.nonlinear
    entry: dict[str, Any] = {
        "gflops": measured(round(result.total / 1e9, 6), "GFLOPs (2 x MACs + paper rules)", method, seconds,
                           flops=result.total),
        "macs": measured(result.macs, "MACs", method, seconds),
        "nonlinear": measured(census.total, "elements", method + ": nonlinearity census of the same trace",
                              seconds, by_kind=dict(census.by_kind), softmax_valid=census.softmax_valid),
    }
    if result.unsupported:
        entry["unsupported_ops"] = dict(result.unsupported)
    return entry


def _pi_cost(card: ModelCard, seq_len: int) -> dict[str, Any]:
    """``zoo.pi_cost`` at T = ``seq_len`` on the CodeParrot setting: published row, our 2PC measurement, or estimate."""
    with stopwatch() as elapsed:
        cost = pi_cost(card.name, seq_len=seq_len, dataset="codeparrot")
    kind = ("reported" if cost.provenance.startswith("published")
            else "measured" if cost.provenance.startswith("measured") else "estimated")
    return {"kind": kind, **cost.to_dict(), "seconds": round(elapsed(), 4)}


def reported_numbers(card: ModelCard) -> list[dict[str, Any]]:
    """The card's published figures (``paper``), each labelled "reported" with the card's source."""
    rows = []
    for key, value in card.paper.items():
        metric, _, size = key.partition("@")
        dataset = {"map50-95": "COCO val2017", "ppl": "CodeParrot validation"}.get(metric, "")
        rows.append(reported(metric, value, card.source, input_size=int(size) if size.isdigit() else None,
                             dataset=dataset))
    return rows
