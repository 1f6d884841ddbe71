"""A shuffling sampler that can start in the middle of an epoch and splits the data between processes,
so a resumed run sees exactly the samples an uninterrupted run would have seen."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler


class ResumableSampler(Sampler[int]):
    """Each epoch: a permutation drawn from ``seed + epoch``, cut to whole global batches, rank ``rank``
    taking every ``world``-th sample; ``set_epoch(epoch, start_batch)`` skips the batches already done."""

    def __init__(self, size: int, batch_size: int, seed: int = 0, rank: int = 0, world: int = 1) -> None:
        if size < batch_size * world:
            raise ValueError(f"{size} samples make no batch of {batch_size} x {world} processes")
        self.size, self.batch_size, self.seed, self.rank, self.world = size, batch_size, seed, rank, world
        self.epoch, self.start_batch = 0, 0

    @property
    def batches_per_epoch(self) -> int:
        return self.size // (self.batch_size * self.world)

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        self.epoch, self.start_batch = epoch, start_batch

    def __len__(self) -> int:
        return (self.batches_per_epoch - self.start_batch) * self.batch_size

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        order = torch.randperm(self.size, generator=generator)[: self.batches_per_epoch * self.batch_size * self.world]
        mine = order[self.rank::self.world]
        return iter(mine[self.start_batch * self.batch_size:].tolist())
