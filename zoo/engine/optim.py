"""Optimizer construction and the learning-rate / momentum schedule, as pure functions of the step.

Parameter groups follow ultralytics 8.1.4 ``build_optimizer`` (spec leyolo.md §6): biases (no decay),
weights of normalisation layers (no decay), all other weights (decay). Group order is biases, decay,
no-decay as in ultralytics, because warm-up treats the first group (biases) specially.

The schedule is stateless: :func:`apply_schedule` sets every group's ``lr`` (and ``momentum``, for SGD)
from the iteration number alone, so a resumed run needs only the iteration to continue bit for bit, and
there is no scheduler object whose state could drift from the step counter.

:class:`UltralyticsSchedule` (recipe key ``schedule: ultralytics``) is the parity mode: ultralytics 8.1.4
``BaseTrainer``'s schedule rule for rule, including the one-epoch lag its ``LambdaLR`` bookkeeping causes,
so a run can be compared with the official fork's on the same budget without a schedule difference.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

logger = logging.getLogger(__name__)

OPTIMIZERS = ("SGD", "AdamW", "Adam")


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Split trainable parameters into [biases, decayed weights, normalisation weights].

    Args:
        model: the bare model.
        weight_decay: decay of the middle group (the others get 0).

    Returns:
        Three ``torch.optim`` group dicts with a ``name`` key ("bias", "decay", "no_decay"); empty groups
        are kept so group indices stay fixed (the checkpoint's optimizer state relies on them).
    """
    norm_types = tuple(v for k, v in nn.__dict__.items() if "Norm" in k and isinstance(v, type))
    bias, decay, no_decay = [], [], []
    for module_name, module in model.named_modules():
        for param_name, param in module.named_parameters(recurse=False):
            if not param.requires_grad:
                continue  # e.g. LeYOLO's fixed DFL weights
            if param_name == "bias":
                bias.append(param)
            elif isinstance(module, norm_types):
                no_decay.append(param)
            else:
                decay.append(param)
    return [{"params": bias, "weight_decay": 0.0, "name": "bias"},
            {"params": decay, "weight_decay": weight_decay, "name": "decay"},
            {"params": no_decay, "weight_decay": 0.0, "name": "no_decay"}]


def build_optimizer(groups: list[dict], name: str, lr: float, momentum: float) -> torch.optim.Optimizer:
    """SGD (Nesterov) or Adam/AdamW (betas = (momentum, 0.999)) over ``groups``, as ultralytics builds them.

    Raises:
        ValueError: unknown optimizer name (the message lists the supported ones).
    """
    if name == "SGD":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=True)
    if name in ("Adam", "AdamW"):
        return getattr(torch.optim, name)(groups, lr=lr, betas=(momentum, 0.999))
    raise ValueError(f"Unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}.")


@dataclass(frozen=True)
class Schedule:
    """Learning rate, momentum and gradient accumulation as functions of the iteration.

    Attributes:
        lr0: peak learning rate.
        lrf: final learning rate as a fraction of lr0.
        shape: "linear" or "cosine" decay from lr0 to lr0 * lrf.
        per_epoch: True: the decay advances once per epoch (ultralytics, LambdaLR stepped per epoch);
            False: every iteration (LM recipes).
        iters_per_epoch: batches per epoch (per process).
        total_iters: iterations of the whole run.
        epochs: epochs of the whole run (the per-epoch decay runs over them).
        warmup_iters: linear warm-up length; 0 disables it.
        warmup_bias_lr: start lr of group 0 (biases) during warm-up (others start at 0).
        momentum: momentum after warm-up (SGD only; Adam betas are left alone).
        warmup_momentum: momentum at iteration 0.
        accumulate: batches per optimizer step after warm-up.
        ramp_accumulate: grow accumulation from 1 to ``accumulate`` during warm-up (ultralytics).
    """

    lr0: float
    lrf: float
    shape: str
    per_epoch: bool
    iters_per_epoch: int
    total_iters: int
    epochs: int
    warmup_iters: int
    warmup_bias_lr: float = 0.0
    momentum: float = 0.937
    warmup_momentum: float = 0.8
    accumulate: int = 1
    ramp_accumulate: bool = False

    def __post_init__(self) -> None:
        if self.shape not in ("linear", "cosine"):
            raise ValueError(f"lr_schedule must be 'linear' or 'cosine' (got {self.shape!r}).")

    def factor(self, iteration: int) -> float:
        """lr / lr0 after warm-up at ``iteration`` (ultralytics ``lf``)."""
        if self.per_epoch:
            return self.lf(iteration // max(self.iters_per_epoch, 1))
        return self._shape(min(iteration / max(self.total_iters, 1), 1.0))

    def lf(self, epoch: int) -> float:
        """ultralytics' per-epoch lambda: lr / lr0 in ``epoch`` (0-based), lr0 at 0 and lr0 * lrf at ``epochs``."""
        return self._shape(min(epoch, self.epochs) / max(self.epochs, 1))

    def _shape(self, p: float) -> float:
        """lr / lr0 at run fraction ``p`` in [0, 1]: linear or cosine (ultralytics ``one_cycle``) from 1 to lrf."""
        if self.shape == "cosine":
            return ((1 - math.cos(p * math.pi)) / 2) * (self.lrf - 1) + 1
        return max(1 - p, 0) * (1.0 - self.lrf) + self.lrf

    def lr(self, iteration: int, group_index: int) -> float:
        target = self.lr0 * self.factor(iteration)
        if iteration <= self.warmup_iters and self.warmup_iters > 0:
            start = self.warmup_bias_lr if group_index == 0 else 0.0
            return float(np.interp(iteration, [0, self.warmup_iters], [start, target]))
        return target

    def momentum_at(self, iteration: int) -> float:
        if iteration <= self.warmup_iters and self.warmup_iters > 0:
            return float(np.interp(iteration, [0, self.warmup_iters], [self.warmup_momentum, self.momentum]))
        return self.momentum

    def accumulate_at(self, iteration: int) -> int:
        if self.ramp_accumulate and self.warmup_iters > 0 and iteration <= self.warmup_iters:
            return max(1, int(np.interp(iteration, [0, self.warmup_iters], [1, self.accumulate]).round()))
        return self.accumulate


@dataclass(frozen=True)
class UltralyticsSchedule(Schedule):
    """ultralytics 8.1.4 ``BaseTrainer._do_train``'s schedule exactly (parity mode, ``schedule: ultralytics``).

    Where it differs from :class:`Schedule` with ``per_epoch=True``:

    * ``LambdaLR`` is built (lr = lr0 * lf(0)), then ``scheduler.last_epoch = start_epoch - 1`` and
      ``scheduler.step()`` runs at the end of every epoch, so epoch ``e >= 1`` trains at lr0 * lf(e - 1) and
      epoch 0 at lr0 * lf(0): the decay lags one epoch behind the epoch counter.
    * Warm-up (``ni <= nw``, nw = max(round(warmup_epochs * nb), 100)) interpolates towards lr0 * lf(epoch)
      of the *current* epoch, and the lr its last iteration sets stays for the rest of that epoch (the
      scheduler only steps at the epoch end).
    * The accumulation ramp interpolates from 1 to ``nbs / batch`` unrounded (``accumulate_ramp_end``);
      after warm-up the last ramp value, round(nbs / batch), stays.

    Momentum ramps (SGD only: Adam groups have no "momentum" key, ultralytics leaves their betas alone)
    and EMA/decay rules are those of :class:`Schedule` / ``ModelEMA``, already ultralytics'.
    """

    accumulate_ramp_end: float = 1.0

    def lr(self, iteration: int, group_index: int) -> float:
        nb, nw = max(self.iters_per_epoch, 1), self.warmup_iters
        epoch = iteration // nb
        if nw > 0 and iteration <= nw:
            start = self.warmup_bias_lr if group_index == 0 else 0.0
            return float(np.interp(iteration, [0, nw], [start, self.lr0 * self.lf(epoch)]))
        if nw > 0 and epoch == nw // nb:  # rest of the epoch in which warm-up ended: its last lr stays
            return self.lr0 * self.lf(epoch)
        return self.lr0 * self.lf(max(epoch - 1, 0))

    def accumulate_at(self, iteration: int) -> int:
        if self.ramp_accumulate and self.warmup_iters > 0 and iteration <= self.warmup_iters:
            ramp = np.interp(iteration, [0, self.warmup_iters], [1, self.accumulate_ramp_end])
            return max(1, int(ramp.round()))
        return self.accumulate


def apply_schedule(optimizer: torch.optim.Optimizer, schedule: Schedule, iteration: int) -> None:
    """Set every group's lr (and momentum where the optimizer has one) for ``iteration``."""
    for j, group in enumerate(optimizer.param_groups):
        group["lr"] = schedule.lr(iteration, j)
        if "momentum" in group:
            group["momentum"] = schedule.momentum_at(iteration)


def count_params(groups: Iterable[dict]) -> list[int]:
    """Number of tensors in each group (for the one-line optimizer summary in the log)."""
    return [len(g["params"]) for g in groups]
