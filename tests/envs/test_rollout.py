"""Rollouts with each kind of policy, including a saved VLA checkpoint."""

from __future__ import annotations

import json

import gymnasium as gym
import pytest

import embodied_mm.envs  # noqa: F401  (registers the ids)
from embodied_mm.envs.rollout import make_rollout_policy, rollout, run_rollouts
from tests.envs.engines_available import ENGINES


@pytest.mark.parametrize("engine", ENGINES)
def test_scripted_rollout_succeeds_on_each_engine(engine, tmp_path):
    summary = rollout("embodied_mm/PickLift-v0", engine, "scripted", 1, None, seed=5,
                      image_size=32, summary_path=tmp_path / "s.json")  # fmt: skip
    assert summary.success_rate == 1.0
    saved = json.loads((tmp_path / "s.json").read_text())
    assert saved["engine"] == engine and saved["per_episode"][0]["seed"] == 5


def test_random_policy_is_seeded():
    env = gym.make("embodied_mm/ReachObject-v0", image_size=16)
    first = run_rollouts(env, make_rollout_policy("random", env, seed=3), 1, seed=0)
    again = run_rollouts(env, make_rollout_policy("random", env, seed=3), 1, seed=0)
    env.close()
    assert first == again


@pytest.mark.slow
def test_checkpoint_policy_drives_the_env(tmp_path):
    """A tiny untrained VLA saved to disk runs through the runtime's chunk executor."""
    from embodied_mm.policies.recipes import make_policy

    ckpt = tmp_path / "ckpt"
    make_policy("vla-chunk", device="cpu", chunk_size=20).save_pretrained(ckpt)
    summary = rollout("embodied_mm/ReachObject-v0", "mujoco", str(ckpt), 1, tmp_path / "videos",
                      image_size=32)  # fmt: skip
    assert summary.episodes == 1 and summary.mean_steps == 60  # untrained: runs to the limit
    assert (tmp_path / "videos" / "episode_0000.mp4").is_file()


def test_unknown_policy_and_env_fail_clearly(tmp_path):
    env = gym.make("embodied_mm/ReachObject-v0", image_size=16)
    with pytest.raises(ValueError, match="neither 'scripted', 'random' nor a checkpoint"):
        make_rollout_policy(str(tmp_path / "nope"), env)
    env.close()
    with pytest.raises(ValueError, match=r"unknown env 'Foo-v0'; known: .*PickLift"):
        rollout("Foo-v0", "mujoco", "random", 1, None)
