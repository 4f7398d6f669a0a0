"""Helpers shared by test modules that spawn processes (DDP), where fixtures cannot reach.

Spawned workers import the test module by name, so what they call must be importable module-level code.
"""
from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import torch

from zoo.tasks.base.training import StopTraining


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (for a torch.distributed rendezvous)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def grab_grads(out_file: Path) -> Any:
    """An ``on_before_optimizer_step`` callback: rank 0 saves every parameter's gradient, then training stops."""
    def cb(trainer: Any) -> None:
        if trainer.dist.is_main:
            torch.save({n: p.grad.clone() for n, p in trainer.model.named_parameters()}, out_file)
        raise StopTraining
    return cb
