"""The contract between the generic training loop and a model family's task.

The engine (``zoo.engine.trainer.Trainer``) owns everything that is the same for detectors and language
models: processes and devices, seeding, the data order, the schedule, precision, gradient accumulation
and clipping, EMA, logging, checkpoints and resume. A :class:`Task` owns what differs: which datasets,
how a batch becomes a loss, how to validate, which number decides "best", how weights are saved.

A task slice names its :class:`Task` subclass in its ``TaskSpec.train_task`` (the model card's ``task``
field picks the spec), so ``zoo train`` works for any registered model whose task is known. To add a
task: subclass :class:`Task`, give it a ``config_class`` (a :class:`~zoo.tasks.base.recipe.TrainConfig`
subclass) and register the slice's spec. The contract lives with the tasks, below the engine, so that a
slice never imports the engine that runs it.
"""
from __future__ import annotations

import abc
import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from zoo.core.checkpoint import save_safetensors
from zoo.core.distributed import DistInfo
from zoo.tasks.base.recipe import TrainConfig


@dataclass
class StepContext:
    """What a task may need to know inside a step or a validation.

    Attributes:
        dist: rank / world size / device of this process.
        epoch: current epoch (0-based).
        epochs: epochs of the whole run.
        iteration: current iteration (0-based, counts batches).
        accumulate: iterations per optimizer step at this iteration.
        run_dir: the run folder.
        autocast: context manager factory for the forward pass (mixed precision on CUDA, no-op on CPU).
    """

    dist: DistInfo
    epoch: int
    epochs: int
    iteration: int
    accumulate: int
    run_dir: Path
    autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext

    @property
    def device(self) -> torch.device:
        return self.dist.device


class Task(abc.ABC):
    """One family's training logic on top of the engine; see the module docstring.

    Subclasses set ``name``, ``config_class`` and ``loss_names`` and implement the abstract methods.
    ``setup`` runs on every rank before anything is written or trained, and is where bad input must be
    refused (empty dataset, labels the model cannot represent, ...).
    """

    name: ClassVar[str] = ""
    config_class: ClassVar[type[TrainConfig]] = TrainConfig
    loss_names: tuple[str, ...] = ("loss",)
    epoch_keys: bool = False  # the train dataset takes (epoch, index) keys (see ResumableSampler)

    def __init__(self, config: TrainConfig) -> None:
        self.config = config

    # -- set-up ---------------------------------------------------------------------------------
    @abc.abstractmethod
    def setup(self, dist: DistInfo) -> None:
        """Load and check the data; raise a one-line error on bad input."""

    @abc.abstractmethod
    def build_model(self) -> nn.Module:
        """The model to train (on CPU; the engine moves it), in train mode."""

    @abc.abstractmethod
    def train_dataset(self) -> Dataset:
        """Map-style dataset; indexed by int, or by (epoch, int) when ``epoch_keys`` is True."""

    def collate(self, items: list[Any]) -> Any:
        return torch.utils.data.default_collate(items)

    @abc.abstractmethod
    def example_input(self, device: torch.device) -> Any:
        """A tiny model input, used to find parameters that never get a gradient (DDP set-up)."""

    def param_groups(self, model: nn.Module, weight_decay: float) -> list[dict] | None:
        """Optimizer parameter groups, or None for the engine's default (BN and biases without decay)."""
        return None

    # -- training -------------------------------------------------------------------------------
    def on_epoch_start(self, epoch: int, ctx: StepContext) -> None:
        """Hook before each epoch's data is drawn (e.g. closing mosaic)."""

    @abc.abstractmethod
    def training_step(self, model: nn.Module, batch: Any, ctx: StepContext) -> tuple[Tensor, Tensor]:
        """Forward a batch (inside ``ctx.autocast()``) and return ``(loss, items)``.

        ``loss`` is backpropagated as is; ``items`` is a detached (len(loss_names),) tensor for logs.
        Under DDP the engine averages gradients over ranks, so a task whose loss is a mean over the
        global batch must normalise with global quantities (see ``models/leyolo/loss.py``).
        """

    def step_log_extras(self) -> dict[str, Any]:
        """Extra entries for this iteration's ``steps.jsonl`` record (e.g. per-layer metrics), called on every
        rank after each ``training_step``; a non-empty dict is logged even off the ``log_every_steps`` cadence.
        Values must be JSON-serialisable; any cross-rank reduction belongs in ``training_step``."""
        return {}

    # -- validation and artifacts ---------------------------------------------------------------
    @abc.abstractmethod
    def validate(self, model: nn.Module, ctx: StepContext) -> dict[str, float]:
        """Validate ``model`` (the EMA model when EMA is on). Called on every rank; every rank must
        return the same metrics (gather to rank 0, compute, broadcast)."""

    @abc.abstractmethod
    def fitness(self, metrics: dict[str, float]) -> float:
        """Higher is better; decides which checkpoint is ``best``."""

    def save_weights(self, model: nn.Module, path: Path, *, metrics: dict[str, float]) -> None:
        """Write deployable weights loadable by ``zoo.create_model(name, checkpoint_path=path)``."""
        save_safetensors(model, path, name=self.config.model, source=f"zoo train ({path.parent.parent})")

    def state_dict(self) -> dict[str, Any]:
        """Extra task state for exact resume (plain containers and tensors only)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Inverse of :meth:`state_dict`."""


class StopTraining(Exception):
    """Raised by a callback to end training cleanly after the current step (state is saved)."""


def iterate_callbacks(callbacks: dict[str, list[Callable[..., Any]]], event: str) -> Iterator[Callable[..., Any]]:
    yield from callbacks.get(event, [])
