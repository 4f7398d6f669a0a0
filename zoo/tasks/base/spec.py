"""``TaskSpec``: what the zoo needs to know about a task, registered once by its slice, like models are.

A model card names its task (``detection``, ``language-modeling``); everything that depends on the task
(the size argument and its unit, an example input, the training task the engine runs, the export graph,
int8 calibration and the accuracy check of an export) is read from the task's spec instead of comparing
task names across the code. A new task is one new slice under ``zoo/tasks/`` that calls
:func:`register_task`, plus its import in ``zoo/tasks/__init__.py``.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import Tensor

from zoo.core.errors import ZooError, did_you_mean


@dataclass(frozen=True)
class TaskSpec:
    """One task, as the orchestration layer (engine, exporter, benchmark, CLI) sees it.

    Attributes:
        name: the task's name, as model cards write it.
        title: a few words for tables and help ("detector", "language model").
        size_arg: the name of the size option (``imgsz`` or ``seq_len``).
        size_unit: its unit in tables (``px``, ``tok``).
        input_name: the exported graph's input name (``images``, ``tokens``).
        quality_metric: the number the task is judged by (``mAP50-95``, ``perplexity``).
        example_input: ``(size, batch) -> tensor`` a forward pass takes (FLOP counts, latency, tracing).
        size_kwargs: ``(card, size) -> builder kwargs`` that make a fresh model accept ``size`` (a language
            model's position table must cover T).
        trace_on_meta: cost traces may run on the meta device (shapes only; a GPT-2-small costs a second).
        train_task: the :class:`~zoo.tasks.base.training.Task` subclass the engine runs for ``zoo train``.
        graph_spec: ``(model, *, size, batch, dynamic_hw, nms) -> GraphSpec`` for the exporter.
        calibration_inputs: ``(graph spec, data, n) -> [input]`` for int8 calibration.
        edge_accuracy: held-out metric of the model and of an int8 export (see the slices' ``export_data``).
        edge_metric / edge_tolerance: what ``edge_accuracy``'s change means and its default bound.
    """

    name: str
    title: str
    size_arg: str
    size_unit: str
    input_name: str
    quality_metric: str
    example_input: Callable[[int, int], Tensor]
    size_kwargs: Callable[[Any, int], dict[str, Any]]
    trace_on_meta: bool
    train_task: type
    graph_spec: Callable[..., Any]
    calibration_inputs: Callable[..., list[Tensor]]
    edge_accuracy: Callable[..., dict[str, Any] | None]
    edge_metric: str
    edge_tolerance: float


_TASKS: dict[str, TaskSpec] = {}


def register_task(spec: TaskSpec) -> TaskSpec:
    """Record ``spec`` under its name; a duplicate name raises ``ValueError``."""
    if spec.name in _TASKS:
        raise ValueError(f"Task {spec.name!r} is already registered.")
    _TASKS[spec.name] = spec
    return spec


def get_task(name: str) -> TaskSpec:
    """The spec of task ``name``; an unknown name raises ``ZooError`` naming the registered tasks."""
    try:
        return _TASKS[name]
    except KeyError:
        raise ZooError(f"Unknown task {name!r}.{did_you_mean(name, _TASKS)} Registered tasks: "
                       f"{', '.join(sorted(_TASKS))}.") from None


def list_tasks() -> list[str]:
    """Registered task names, sorted."""
    return sorted(_TASKS)
