"""Launched by ``tests/train/test_ddp.py`` under ``accelerate launch``: trains on a dataset
whose rank-1 shard of the second batch has NaN actions (rank 0's shard is clean), and prints
each rank's outcome as ``rank R: <error>``.

    accelerate launch ... tests/train/nan_on_one_rank.py DATASET RUN_DIR
"""

from __future__ import annotations

import sys
from typing import Any

import torch
from torch.utils.data import Dataset

from embodied_mm.features import ACTION
from embodied_mm.train.config import TrainConfig
from embodied_mm.train.run import build_policy, load_datasets, policy_stats
from embodied_mm.train.sampler import ResumableShardSampler
from embodied_mm.train.trainer import NonFiniteLossError, make_accelerator, train

BATCH = 4
POISONED_STEP = 2  # step 1 trains normally, so a checkpoint of it is the last good state


class PoisonedForRankOne(Dataset):
    """The real window dataset, with NaN actions in the samples rank 1 draws at
    ``POISONED_STEP`` (found with the trainer's own sampler, so rank 0 never sees them)."""

    def __init__(self, inner: Dataset, seed: int) -> None:
        self.inner = inner
        rank1 = list(ResumableShardSampler(len(inner), BATCH, seed, rank=1, world_size=2))
        self.poisoned = set(rank1[POISONED_STEP - 1])

    def __len__(self) -> int:
        return len(self.inner)

    def __getitem__(self, i: int) -> dict[str, Any]:
        item = self.inner[i]
        if i in self.poisoned:
            item = {**item, ACTION: torch.full_like(item[ACTION], float("nan"))}
        return item


def main(dataset_root: str, out: str) -> int:
    cfg = TrainConfig(recipe="vla-chunk", dataset=[dataset_root], out=out, steps=4,
                      batch_size=BATCH, save_every=100, log_every=1, warmup_steps=1)  # fmt: skip
    accelerator = make_accelerator(cfg)
    dataset, parts = load_datasets(cfg, cfg.policy)
    policy = build_policy(cfg, policy_stats(parts))
    try:
        train(cfg, policy, PoisonedForRankOne(dataset, cfg.seed), accelerator=accelerator)
    except NonFiniteLossError as err:
        print(f"rank {accelerator.process_index}: {err}", flush=True)
        return 3
    print(f"rank {accelerator.process_index}: finished", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
