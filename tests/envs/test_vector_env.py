"""Async vector envs: the sims and renderers are built inside the worker processes."""

from __future__ import annotations

import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest

import embodied_mm.envs  # noqa: F401  (registers the ids)
from tests.envs.engines_available import ENGINES


@pytest.mark.parametrize("engine", ENGINES)
def test_async_vector_env_steps_in_workers(engine):
    # forkserver: other tests in this process may have opened an EGL context already, and a
    # forked child of such a process hangs in EGL (see the TabletopEnv docstring).
    envs = gym.make_vec(
        "embodied_mm/PickLift-v0",
        num_envs=2,
        vectorization_mode="async",
        vector_kwargs={"context": "forkserver"},
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
    finally:
        envs.close()
    single = gym.make("embodied_mm/PickLift-v0", engine=engine, image_size=24)
    first, _ = single.reset(seed=3)
    single.close()
    np.testing.assert_array_equal(again["pixels"]["front"][0], first["pixels"]["front"])


SCRIPT = """
import gymnasium as gym
import embodied_mm.envs
from embodied_mm.envs.tabletop_env import TabletopEnv

# Constructing an env in the parent (as AsyncVectorEnv does for its spaces) must not start
# a renderer, or the forked workers would hang.
parent = TabletopEnv("reach", image_size=16)
assert parent.engine is None
envs = gym.make_vec("embodied_mm/ReachObject-v0", num_envs=2, vectorization_mode="async",
                    image_size=16)
obs, _ = envs.reset(seed=0)
envs.step(envs.action_space.sample())
envs.close()
print("ok", obs["pixels"]["wrist"].shape)
"""


def test_default_fork_context_works_from_a_clean_parent():
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert "ok (2, 16, 16, 3)" in out.stdout
