"""Seeding, and capturing / restoring every RNG a training step can touch.

A resumed run must draw exactly the random numbers the uninterrupted run would have drawn (dropout,
anything a task samples), so the checkpoint stores the Python, NumPy, torch CPU and CUDA generator states
of every rank. The states are stored as plain ints / lists / tensors so that the state file loads with
``torch.load(weights_only=True)``. Data augmentation does not use these global generators: the data
modules derive one generator per (seed, epoch, sample), which is why worker processes need no state.
"""
from __future__ import annotations

import os
import random
from typing import Any

import numpy as np
import torch


def seed_everything(seed: int, *, deterministic: bool = True) -> None:
    """Seed Python, NumPy and torch (all devices); optionally ask torch for deterministic kernels.

    ``deterministic`` uses ``warn_only`` so an op without a deterministic kernel warns instead of failing,
    and sets the cuBLAS workspace variable that deterministic matmuls need on CUDA.
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False


def capture_rng_state() -> dict[str, Any]:
    """Current states of the Python, NumPy, torch CPU and CUDA generators (weights_only-loadable)."""
    version, mt, gauss = random.getstate()
    np_state = np.random.get_state(legacy=True)
    state: dict[str, Any] = {
        "python": [version, list(mt), gauss],
        "numpy": {"keys": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng_state`. CUDA states are restored for as many devices as both have."""
    version, mt, gauss = state["python"]
    random.setstate((int(version), tuple(int(v) for v in mt), gauss))
    np_state = state["numpy"]
    np.random.set_state(("MT19937", np_state["keys"].numpy().astype(np.uint32), np_state["pos"],
                         np_state["has_gauss"], np_state["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if torch.cuda.is_available() and state.get("cuda"):
        n = min(len(state["cuda"]), torch.cuda.device_count())
        torch.cuda.set_rng_state_all(list(state["cuda"])[:n])


def sample_generator(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The generator of one training sample: a pure function of (seed, epoch, index)."""
    return np.random.default_rng([seed & 0xFFFFFFFF, epoch, index])
