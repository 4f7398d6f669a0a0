"""Exponential moving average of model weights with ultralytics ``ModelEMA`` semantics.

decay(n) = decay * (1 - exp(-n / tau)): the average follows the model closely for the first few thousand
updates and then settles at ``decay`` (0.9999, tau 2000 in the LeYOLO recipe; the released weights are
these EMA weights). Every floating-point entry of the state_dict is averaged, BatchNorm running
statistics included; integer buffers (``num_batches_tracked``) are left alone, as in ultralytics.
"""
from __future__ import annotations

import copy
import math
from typing import Any

import torch
from torch import nn

from zoo.core.distributed import unwrap_model


class ModelEMA:
    """EMA copy of a model, updated after every optimizer step.

    Args:
        model: the model being trained (DDP/compile wrappers are looked through).
        decay: the asymptotic decay.
        tau: ramp length in updates.
        updates: number of updates already done (when resuming).
    """

    def __init__(self, model: nn.Module, decay: float = 0.9999, tau: float = 2000.0, updates: int = 0) -> None:
        self.ema = copy.deepcopy(unwrap_model(model)).eval()
        self.ema.requires_grad_(False)
        self.decay = decay
        self.tau = tau
        self.updates = updates

    def decay_at(self, updates: int) -> float:
        return self.decay * (1 - math.exp(-updates / self.tau))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        d = self.decay_at(self.updates)
        msd = unwrap_model(model).state_dict()
        for k, v in self.ema.state_dict().items():
            if v.dtype.is_floating_point:
                v.mul_(d).add_(msd[k].detach().to(v.dtype), alpha=1 - d)

    def state_dict(self) -> dict[str, Any]:
        return {"weights": self.ema.state_dict(), "updates": self.updates, "decay": self.decay, "tau": self.tau}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.ema.load_state_dict(state["weights"])
        self.updates = int(state["updates"])
        self.decay = float(state["decay"])
        self.tau = float(state["tau"])
