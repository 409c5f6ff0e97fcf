"""Held-out demonstrations shared by the eval-plans and eval-goals tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from embodied_mm.data.recorder import gym_expert_source, record

HELD_OUT_SEED = 200_000


@pytest.fixture(scope="session")
def held_out(tmp_path_factory) -> Path:
    """Two ReachObject demos recorded with held-out seeds, as `record --seed 200000` does."""
    root = tmp_path_factory.mktemp("heldout") / "ReachObject"
    record(gym_expert_source("embodied_mm/ReachObject-v0", "mujoco"), root, 2,
           seed=HELD_OUT_SEED, progress=False)  # fmt: skip
    return root
