"""torch.distributed set-up the nanoGPT way: a run is distributed exactly when torchrun has set ``RANK``.

``torchrun --nproc_per_node N -m zoo train ...`` sets RANK / WORLD_SIZE / LOCAL_RANK / MASTER_ADDR /
MASTER_PORT; :func:`setup_distributed` reads them, picks NCCL on CUDA and gloo on CPU, and pins each
process to ``cuda:LOCAL_RANK``. Only rank 0 logs, shows progress bars and writes files; every helper
here is a no-op on a single process so task code never branches on it.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands in the run.

    Attributes:
        rank: global rank (0 on a single process).
        world_size: number of processes.
        local_rank: rank on this machine (selects the GPU).
        device: the device this process trains on.
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``''``/``None`` -> CUDA when available else CPU; ``'cuda'``/``'cuda:1'``/``'cpu'``/``'0'`` as given.

    Raises:
        ValueError: an unknown device string, or CUDA asked for but not available.
    """
    if isinstance(device, torch.device):
        return device
    text = (device or "").strip().lower()
    if text in ("", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if text.isdigit():
        text = f"cuda:{text}"
    try:
        dev = torch.device(text)
    except RuntimeError as err:
        raise ValueError(f"Unknown device {device!r}; use 'cpu', 'cuda', 'cuda:N' or a GPU index.") from err
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"Device {device!r} asked for but CUDA is not available here; use --device cpu.")
    return dev


def setup_distributed(device: str | torch.device | None = None) -> DistInfo:
    """Initialise the process group when launched by torchrun, else describe a single process.

    Under torchrun the device type comes from ``device`` (auto: CUDA when available) and the index from
    ``LOCAL_RANK``. Calling it again in an initialised process returns the same description.
    """
    dev = resolve_device(device)
    if "RANK" not in os.environ:
        return DistInfo(device=dev)
    rank, world = int(os.environ["RANK"]), int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if dev.type == "cuda":
        dev = torch.device("cuda", local_rank)
        torch.cuda.set_device(dev)
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, rank=rank, world_size=world)
        logger.info("process group %s: rank %d of %d on %s", backend, rank, world, dev)
    return DistInfo(rank=rank, world_size=world, local_rank=local_rank, device=dev)


def cleanup_distributed() -> None:
    """Destroy the process group if this process created one."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def is_main_process() -> bool:
    """True on rank 0 (and on a single process)."""
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


def _active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def barrier() -> None:
    if _active():
        dist.barrier()


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum of ``tensor`` over ranks (a new tensor; autograd-free)."""
    if not _active():
        return tensor
    out = tensor.detach().clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out


def all_reduce_mean(tensor: torch.Tensor) -> torch.Tensor:
    """Mean of ``tensor`` over ranks (a new tensor; autograd-free)."""
    if not _active():
        return tensor
    return all_reduce_sum(tensor) / dist.get_world_size()


def all_gather_objects(obj: Any) -> list[Any]:
    """Every rank's ``obj`` (picklable), in rank order; ``[obj]`` on a single process."""
    if not _active():
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Rank ``src``'s ``obj`` on every rank."""
    if not _active():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def unwrap_model(model: nn.Module) -> nn.Module:
    """The bare model inside DDP and/or ``torch.compile`` wrappers (what gets saved and evaluated)."""
    while True:
        if isinstance(model, nn.parallel.DistributedDataParallel):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod  # type: ignore[assignment]
        else:
            return model


def unused_parameters(model: nn.Module, example_input: Any) -> list[str]:
    """Names of trainable parameters that get no gradient from one forward/backward on ``example_input``.

    LeYOLO-Medium/Large compute layers whose output never reaches the head (spec leyolo.md §2.8); DDP
    must be told (``find_unused_parameters``) or it waits for their gradients forever. Run on a deep copy
    in train mode so BatchNorm statistics and the caller's model are untouched; forward passes of our
    models draw no random numbers except dropout, whose RNG state is restored afterwards.
    """
    import copy

    probe = copy.deepcopy(model).train()
    cpu_state = torch.get_rng_state()
    cuda_state = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    try:
        out = probe(example_input)
        tensors = [t for t in _flatten(out) if t.requires_grad]
        if tensors:
            sum(t.float().sum() for t in tensors).backward()
    finally:
        torch.set_rng_state(cpu_state)
        if cuda_state is not None:
            torch.cuda.set_rng_state_all(cuda_state)
    return [n for n, p in probe.named_parameters() if p.requires_grad and p.grad is None]


def _flatten(obj: Any) -> list[torch.Tensor]:
    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, dict):
        return [t for v in obj.values() for t in _flatten(v)]
    if isinstance(obj, (list, tuple)):
        return [t for v in obj for t in _flatten(v)]
    return []


def wrap_ddp(model: nn.Module, info: DistInfo, example_input: Any | None = None) -> nn.Module:
    """Wrap in DDP when distributed; ``find_unused_parameters`` only when a probe finds dead parameters.

    The probe (see :func:`unused_parameters`) keeps Nano/Small/LM runs on the fast path and turns the flag
    on, with a log line naming how many parameters are dead, for Medium/Large.
    """
    if not info.distributed:
        return model
    dead = unused_parameters(model, example_input) if example_input is not None else []
    if dead and info.is_main:
        logger.info("%d parameter tensors get no gradient (e.g. %s); DDP runs with find_unused_parameters=True",
                    len(dead), dead[0])
    ids = [info.local_rank] if info.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids, find_unused_parameters=bool(dead))
