"""Batches of indices for in-memory datasets, shuffled per epoch and sharded per rank.

Each rank draws the same permutation (seeded by `seed` and the epoch), then takes every
`world_size`-th index starting at its rank, so shards are disjoint and together cover the
split. For training, shards are padded to equal length (as DistributedSampler does) so every
rank runs the same number of steps; evaluation shards are left unpadded so each sample is
scored exactly once.
"""

from __future__ import annotations

import math
from typing import Iterator

import torch
from torch.utils.data import Sampler


class ShardedBatchSampler(Sampler[torch.Tensor]):
    def __init__(
        self,
        size: int,
        batch_size: int,
        shuffle: bool,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        pad: bool | None = None,
    ):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside world_size {world_size}")
        self.size, self.batch_size, self.shuffle, self.seed = size, batch_size, shuffle, seed
        self.rank, self.world_size = rank, world_size
        self.pad = shuffle if pad is None else pad
        self.epoch = 0
        self.skip: tuple[int, int] | None = None  # (epoch, batches): where a resumed run continues

    def resume(self, epoch: int, batches: int) -> None:
        """Make the next pass over `epoch` start after its first `batches` batches."""
        self.skip = (epoch, batches)

    def first_batch(self) -> int:
        """Where the next pass starts: past the batches a resumed run had done, else 0."""
        return self.skip[1] if self.skip is not None and self.skip[0] == self.epoch else 0

    def set_epoch(self, epoch: int) -> None:
        """Lightning calls this at the start of every epoch."""
        self.epoch = epoch

    def shard(self) -> torch.Tensor:
        if self.shuffle:
            order = torch.randperm(self.size, generator=torch.Generator().manual_seed(self.seed + self.epoch))
        else:
            order = torch.arange(self.size)
        if self.pad and self.size % self.world_size:
            padding = self.world_size - self.size % self.world_size
            order = torch.cat([order, order[:padding]])
        return order[self.rank :: self.world_size]

    def __iter__(self) -> Iterator[torch.Tensor]:
        start, self.skip = self.first_batch(), None
        yield from self.shard().split(self.batch_size)[start:]

    def __len__(self) -> int:
        per_rank = math.ceil(self.size / self.world_size) if self.pad else len(range(self.rank, self.size, self.world_size))
        return math.ceil(per_rank / self.batch_size)
