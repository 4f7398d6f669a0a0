"""Training-state files: everything a run needs to continue bit for bit, written atomically.

A run folder holds::

    weights/last.safetensors   deployable weights (the EMA weights when EMA is on), loadable with
    weights/best.safetensors   zoo.create_model(name, checkpoint_path=...) - written by the task
    weights/last.state.pt      training state: raw weights, EMA, optimizer, AMP scaler, iteration,
                               per-rank RNG states, best fitness, run config (torch.save of plain
                               containers and tensors, read back with torch.load(weights_only=True))
    weights/last.json          sidecar: model, task, iteration, epoch, metrics, effzoo version

The state file is self-contained (it repeats the weights) so that it alone is the commit point of a
checkpoint: it is replaced atomically, so a kill at any moment leaves the previous complete state.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from zoo.core.errors import CheckpointError
from zoo.core.fileio import atomic_path, write_json_atomic
from zoo.engine.results import finite_or_none

logger = logging.getLogger(__name__)

STATE_FORMAT = "effzoo-train-state/1"
STATE_NAME = "last.state.pt"


@dataclass
class TrainState:
    """The resumable state of a run (see the module docstring for the file layout).

    Attributes:
        model_name: registry name of the model.
        task: the task name ("detection", "language-modeling").
        config: the run's config as a plain dict.
        iteration: batches consumed so far (the next iteration to run).
        last_opt_step: iteration of the last optimizer step (gradient accumulation bookkeeping).
        model: raw (non-EMA) state_dict.
        optimizer: optimizer state_dict.
        ema: ``ModelEMA.state_dict()`` or None.
        scaler: AMP GradScaler state or None.
        rng: one :func:`zoo.core.rng.capture_rng_state` dict per rank.
        best_fitness: best validation fitness so far (None before the first validation).
        metrics: the last validation metrics.
        task_state: whatever the task needs beyond this (plain containers/tensors).
        version: effzoo version that wrote the file.
    """

    model_name: str
    task: str
    config: dict[str, Any]
    iteration: int
    last_opt_step: int
    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    ema: dict[str, Any] | None = None
    scaler: dict[str, Any] | None = None
    rng: list[dict[str, Any]] = field(default_factory=list)
    best_fitness: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    task_state: dict[str, Any] = field(default_factory=dict)
    version: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"format": STATE_FORMAT, **{k: getattr(self, k) for k in self.__dataclass_fields__}}


def save_state(state: TrainState, folder: str | os.PathLike[str], *, epoch: int | None = None) -> Path:
    """Write ``folder/last.state.pt`` atomically and its JSON sidecar ``folder/last.json``."""
    folder = Path(folder)
    path = folder / STATE_NAME
    with atomic_path(path) as tmp:
        torch.save(state.to_dict(), tmp)
    write_json_atomic(folder / "last.json", finite_or_none({  # a NaN metric must not make the sidecar unwritable
        "model": state.model_name, "task": state.task, "iteration": state.iteration, "epoch": epoch,
        "best_fitness": state.best_fitness, "metrics": state.metrics, "effzoo_version": state.version,
        "config": state.config}))
    return path


def state_path(run_dir: str | os.PathLike[str]) -> Path:
    """Where a run folder keeps its training state (``DIR/weights/last.state.pt``)."""
    return Path(run_dir) / "weights" / STATE_NAME


def load_state(run_dir: str | os.PathLike[str], *, expect_model: str | None = None,
               expect_task: str | None = None) -> TrainState:
    """Read a run folder's training state with ``torch.load(weights_only=True)``.

    Raises:
        FileNotFoundError: no state file in ``run_dir``.
        CheckpointError: unreadable file, not an effzoo training state, or written for another model/task.
    """
    path = state_path(run_dir)
    if not path.is_file():
        raise FileNotFoundError(f"No training state to resume in {run_dir}: {path} is missing. Pass the run folder "
                                "that `zoo train` wrote (it contains weights/last.state.pt).")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for truncated or foreign files
        raise CheckpointError(f"Cannot read training state {path}: {err}") from err
    if not isinstance(raw, dict) or raw.get("format") != STATE_FORMAT:
        raise CheckpointError(f"{path} is not an effzoo training state (format {STATE_FORMAT!r}).")
    fields = TrainState.__dataclass_fields__
    state = TrainState(**{k: raw[k] for k in fields if k in raw})
    bad = [k for k, v in (state.model or {}).items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:  # resuming would "succeed" and train NaN weights
        raise CheckpointError(f"{path} holds non-finite weights ({len(bad)} of {len(state.model)} tensors, e.g. "
                              f"{bad[0]}): the run diverged before it was saved; start a new run with a lower lr0.")
    if expect_model is not None and state.model_name != expect_model:
        raise CheckpointError(f"Resume folder {run_dir} was trained with model {state.model_name!r} but "
                              f"{expect_model!r} was requested; resume with {state.model_name!r} or start a new run.")
    if expect_task is not None and state.task != expect_task:
        raise CheckpointError(f"Resume folder {run_dir} holds a {state.task!r} run, not {expect_task!r}.")
    return state
