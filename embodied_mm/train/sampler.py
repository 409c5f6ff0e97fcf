"""A deterministic, resumable, rank-sharded sampler.

The order of epoch ``e`` depends only on ``(seed, e)``, so a resumed run can jump to any
``(epoch, batch)`` position without replaying data, and every rank sees a disjoint shard.

With per-sample ``weights`` an epoch is ``dataset_len`` draws with replacement, sample ``i``
drawn with probability ``weights[i] / weights.sum()`` (``train --intervention-weight``); the
draws, too, depend only on ``(seed, e)``.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler


class ResumableShardSampler(Sampler[list[int]]):
    """Yields batches of indices for one rank, starting at ``start_batch`` of ``epoch``."""

    def __init__(
        self,
        dataset_len: int,
        batch_size: int,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        weights: torch.Tensor | None = None,
    ) -> None:
        """``weights``: (dataset_len,) non-negative, not all 0; None: a plain shuffle."""
        if dataset_len < batch_size * world_size:
            raise ValueError(
                f"dataset has {dataset_len} samples; a global batch needs "
                f"{batch_size} x {world_size} processes = {batch_size * world_size}"
            )
        self.dataset_len = dataset_len
        self.batch_size = batch_size
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0
        self.start_batch = 0
        if weights is not None:
            weights = torch.as_tensor(weights, dtype=torch.float64)
            if weights.shape != (dataset_len,) or (weights < 0).any() or weights.sum() <= 0:
                raise ValueError(
                    f"sample weights must be {dataset_len} non-negative numbers, not all 0"
                )
        self.weights = weights

    @property
    def batches_per_epoch(self) -> int:
        # drop the ragged tail so every rank takes the same number of steps
        return self.dataset_len // (self.batch_size * self.world_size)

    def set_position(self, epoch: int, start_batch: int = 0) -> None:
        self.epoch, self.start_batch = epoch, start_batch

    def __len__(self) -> int:
        return self.batches_per_epoch - self.start_batch

    def __iter__(self) -> Iterator[list[int]]:
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        if self.weights is None:
            order = torch.randperm(self.dataset_len, generator=g).tolist()
        else:
            order = torch.multinomial(
                self.weights, self.dataset_len, replacement=True, generator=g
            ).tolist()
        global_batch = self.batch_size * self.world_size
        for b in range(self.start_batch, self.batches_per_epoch):
            chunk = order[b * global_batch : (b + 1) * global_batch]
            yield chunk[self.rank * self.batch_size : (self.rank + 1) * self.batch_size]
