"""A resumable, rank-aware training sampler.

Same order as ``torch.utils.data.DistributedSampler`` (permutation from ``seed + epoch``, padded by
repetition to a multiple of the world size, rank r takes every world_size-th index from r), plus:

* ``set_epoch(epoch, skip_batches)``: start the epoch after ``skip_batches`` batches, which is how a run
  resumed in the middle of an epoch sees exactly the batches the uninterrupted run would have seen;
* ``with_epoch``: yield ``(epoch, index)`` keys, for datasets whose augmentation draws from a generator
  seeded by (seed, epoch, index) (see ``zoo.core.rng.sample_generator``).
"""
from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torch.utils.data import Sampler


class ResumableSampler(Sampler):
    """Shuffled (or ordered) indices of a ``length``-sample dataset for one rank.

    Args:
        length: dataset size.
        batch_size: per-process batch size (what ``skip_batches`` counts in).
        rank, world_size: this process and the number of processes.
        shuffle: permute each epoch (False: 0, 1, 2, ...).
        seed: permutation seed (same on every rank).
        with_epoch: yield ``(epoch, index)`` instead of ``index``.
    """

    def __init__(self, length: int, batch_size: int, *, rank: int = 0, world_size: int = 1, shuffle: bool = True,
                 seed: int = 0, with_epoch: bool = False) -> None:
        if length < 1:
            raise ValueError("ResumableSampler needs a non-empty dataset.")
        self.length = length
        self.batch_size = batch_size
        self.rank = rank
        self.world_size = world_size
        self.shuffle = shuffle
        self.seed = seed
        self.with_epoch = with_epoch
        self.num_samples = math.ceil(length / world_size)  # per rank, after padding
        self.epoch = 0
        self.skip = 0

    @property
    def batches_per_epoch(self) -> int:
        return math.ceil(self.num_samples / self.batch_size)

    def set_epoch(self, epoch: int, skip_batches: int = 0) -> None:
        if not 0 <= skip_batches <= self.batches_per_epoch:
            raise ValueError(f"skip_batches={skip_batches} outside [0, {self.batches_per_epoch}].")
        self.epoch = epoch
        self.skip = skip_batches * self.batch_size

    def indices(self) -> list[int]:
        """This rank's full index list for the current epoch (before skipping)."""
        if self.shuffle:
            g = torch.Generator()
            g.manual_seed(self.seed + self.epoch)
            order = torch.randperm(self.length, generator=g).tolist()
        else:
            order = list(range(self.length))
        total = self.num_samples * self.world_size
        while len(order) < total:  # pad by repetition, as DistributedSampler does
            order += order[: total - len(order)]
        return order[self.rank:total:self.world_size]

    def __iter__(self) -> Iterator[int | tuple[int, int]]:
        for i in self.indices()[self.skip:]:
            yield (self.epoch, i) if self.with_epoch else i

    def __len__(self) -> int:
        return max(self.num_samples - self.skip, 0)
