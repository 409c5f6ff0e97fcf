"""Async vector envs: the sims and renderers are built inside the worker processes."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import embodied_mm.envs  # noqa: F401  (registers the ids)
from tests.envs.engines_available import ENGINES


@pytest.mark.parametrize("engine", ENGINES)
def test_async_vector_env_steps_in_workers(engine):
    envs = gym.make_vec(
        "embodied_mm/PickLift-v0",
        num_envs=2,
        vectorization_mode="async",
        engine=engine,
        image_size=24,
    )
    try:
        obs, info = envs.reset(seed=[3, 4])
        assert obs["pixels"]["front"].shape == (2, 24, 24, 3)
        assert obs["agent_pos"].shape == (2, 15)
        assert len(info["task"]) == 2
        # different seeds: different scenes in the two workers
        assert not np.array_equal(obs["pixels"]["front"][0], obs["pixels"]["front"][1])
        envs.action_space.seed(0)
        for _ in range(3):
            obs, reward, terminated, _, info = envs.step(envs.action_space.sample())
        assert reward.shape == (2,) and terminated.shape == (2,)
        assert info["is_success"].shape == (2,)
        again, _ = envs.reset(seed=[3, 4])
        single = gym.make("embodied_mm/PickLift-v0", engine=engine, image_size=24)
        first, _ = single.reset(seed=3)
        single.close()
        np.testing.assert_array_equal(again["pixels"]["front"][0], first["pixels"]["front"])
    finally:
        envs.close()
