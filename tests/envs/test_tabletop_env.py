"""The Gymnasium contract of the tabletop envs: check_env, spaces, seeding, bad input."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import embodied_mm.envs  # noqa: F401  (registers the ids)
from embodied_mm.envs.expert import make_expert
from embodied_mm.envs.registration import gym_id, task_ids
from embodied_mm.envs.robot import TCP_DOWN_QUAT
from embodied_mm.envs.rotations import quat_error
from embodied_mm.envs.tabletop_env import POS_SCALE, ROT_SCALE, TabletopEnv
from embodied_mm.envs.tasks import TASKS
from embodied_mm.features import OBS_STATE, TASK, env_obs_to_frame, image_key
from embodied_mm.registry import UnknownNameError
from tests.envs.engines_available import ENGINES

SMALL = 32  # px: enough to exercise rendering, cheap on 2 cores


@pytest.fixture
def env():
    e = TabletopEnv("pick_lift", image_size=SMALL)
    yield e
    e.close()


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("task", TASKS.names())
def test_check_env_passes(task, engine):
    env = gym.make(gym_id(task), engine=engine, image_size=SMALL).unwrapped
    try:
        check_env(env, skip_render_check=False)
    finally:
        env.close()


def test_every_task_has_a_gym_id_and_the_env_exposes_its_spec():
    ids = task_ids()
    assert sorted(ids.values()) == TASKS.names()
    assert len(ids) >= 6
    env = gym.make("embodied_mm/PickLift-v0", image_size=SMALL)
    assert env.spec.max_episode_steps == TASKS.get("pick_lift").max_steps
    env.close()


def test_observation_layout_matches_the_data_contract(env):
    obs, info = env.reset(seed=3)
    assert set(obs["pixels"]) == {"front", "wrist"}
    assert obs["pixels"]["front"].shape == (SMALL, SMALL, 3)
    assert obs["pixels"]["front"].dtype == np.uint8
    state = obs["agent_pos"]
    assert state.shape == (15,) and state.dtype == np.float32
    engine = env.engine
    np.testing.assert_allclose(state[:7], engine.arm_joint_positions(), atol=1e-6)
    assert state[7] == pytest.approx(engine.gripper_opening(), abs=1e-6)
    np.testing.assert_allclose(state[8:11], engine.ee_pose()[0], atol=1e-6)
    quat = engine.ee_pose()[1]
    np.testing.assert_allclose(state[11:], quat * np.sign(quat @ TCP_DOWN_QUAT), atol=1e-6)
    frame = env_obs_to_frame(obs, info["task"])
    assert frame[TASK] == env.task_instruction == info["task"]
    assert frame[image_key("wrist")].shape == (SMALL, SMALL, 3)
    assert frame[OBS_STATE].shape == (15,)


def test_image_size_is_configurable():
    env = TabletopEnv("reach", image_size=(24, 40))
    obs, _ = env.reset(seed=0)
    assert obs["pixels"]["wrist"].shape == (24, 40, 3)
    assert env.observation_space["pixels"]["front"].shape == (24, 40, 3)
    env.close()


@pytest.mark.parametrize("engine", ENGINES)
def test_same_seed_same_observation_different_seed_differs(engine):
    env = TabletopEnv("stack", engine=engine, image_size=SMALL)
    a, info_a = env.reset(seed=7)
    env.step(env.action_space.sample())
    b, info_b = env.reset(seed=7)
    c, _ = env.reset(seed=8)
    env.close()
    for cam in ("front", "wrist"):
        np.testing.assert_array_equal(a["pixels"][cam], b["pixels"][cam])
    np.testing.assert_array_equal(a["agent_pos"], b["agent_pos"])
    assert info_a["task"] == info_b["task"]
    assert not np.array_equal(a["pixels"]["front"], c["pixels"]["front"])


def test_domain_randomization_switches_off_and_keeps_the_task_distribution():
    env = TabletopEnv("pick_lift", image_size=SMALL, domain_randomization=False)
    env.reset(seed=1)
    nominal_light = env.engine.model.light_diffuse[0].copy()
    colors_off = env.episode.rgba["target"]
    env.reset(seed=1, options={"domain_randomization": True})
    randomized_light = env.engine.model.light_diffuse[0].copy()
    colors_on = env.episode.rgba["target"]
    env.reset(seed=2)
    assert not np.allclose(nominal_light, randomized_light)
    np.testing.assert_allclose(env.engine.model.light_diffuse[0], nominal_light)
    assert colors_on != colors_off  # shade jitter only when randomising
    env.close()


def test_heldout_instruction_split_uses_other_paraphrases():
    task = TASKS.get("pick_lift")()
    env = TabletopEnv("pick_lift", image_size=SMALL, instruction_split="heldout")
    heldout = {env.reset(seed=s)[1]["task"] for s in range(12)}
    train = {
        env.reset(seed=s, options={"instruction_split": "train"})[1]["task"] for s in range(12)
    }
    env.close()
    assert heldout.isdisjoint(train)
    words = {t.split("{")[0] for t in task.instructions.heldout}
    assert all(any(h.startswith(w) for w in words) for h in heldout)


def test_bad_actions_fail_naming_the_field(env):
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"shape \(3,\).*dx, dy, dz"):
        env.step(np.zeros(3))
    with pytest.raises(ValueError, match=r"NaN/inf in \['dyaw'\]"):
        env.step(np.array([0, 0, 0, 0, 0, np.nan, 0]))
    with pytest.raises(ValueError, match=r"\['gripper'\]"):
        env.step(np.array([0, 0, 0, 0, 0, 0, np.inf]))
    with pytest.raises(ValueError, match="numeric"):
        env.step(["a"] * 7)


def test_out_of_range_actions_are_clipped_and_counted(env):
    env.reset(seed=0)
    _, _, _, _, info = env.step(np.array([5.0, 0, -3.0, 0, 0, 0, 1.0]))
    assert info["action_clipped"] == 2
    _, _, _, _, info = env.step(np.array([0, 0, 0, 0, 0, 0, 2.0]))
    assert info["action_clipped"] == 1 and info["n_clipped_actions"] == 3
    _, info = env.reset(seed=1)
    assert info["n_clipped_actions"] == 0


def test_joint_pos_mode_tracks_joint_targets():
    env = TabletopEnv("reach", action_mode="joint_pos", image_size=SMALL)
    obs, _ = env.reset(seed=0)
    target = obs["agent_pos"][:7].astype(np.float64) + np.array([0.2, 0.1, 0, -0.1, 0, 0.1, 0])
    for _ in range(10):
        obs, *_ = env.step(np.append(target, 0.02).astype(np.float32))
    np.testing.assert_allclose(obs["agent_pos"][:7], target, atol=0.01)
    assert obs["agent_pos"][7] == pytest.approx(0.02, abs=3e-3)
    with pytest.raises(ValueError, match="gripper_opening"):
        env.step(np.full(8, np.nan))
    env.close()


def test_bad_construction_and_reset_input_fail_clearly():
    with pytest.raises(UnknownNameError, match=r"known: .*pick_lift.*stack"):
        TabletopEnv("juggle")
    with pytest.raises(ValueError, match="action_mode"):
        TabletopEnv("reach", action_mode="torque")
    with pytest.raises(UnknownNameError, match="engine 'ode'; known: mujoco, pybullet"):
        TabletopEnv("reach", engine="ode")
    env = TabletopEnv("reach", image_size=SMALL)
    with pytest.raises(ValueError, match="unknown reset options \\['colour'\\]"):
        env.reset(seed=0, options={"colour": True})
    with pytest.raises(ValueError, match="instruction split 'test'"):
        env.reset(seed=0, options={"instruction_split": "test"})
    with pytest.raises(RuntimeError, match="reset"):
        TabletopEnv("reach").step(np.zeros(7))
    env.close()


def test_the_sim_is_built_lazily_on_reset():
    env = TabletopEnv("push", image_size=SMALL)
    assert env.engine is None  # nothing to carry across a fork
    env.reset(seed=0)
    assert env.engine is not None
    env.close()
    assert env.engine is None


@pytest.mark.parametrize("engine", ENGINES)
def test_ee_delta_moves_the_tcp_as_commanded(engine):
    env = TabletopEnv("reach", engine=engine, image_size=SMALL)
    obs, _ = env.reset(seed=0)
    start = obs["agent_pos"][8:11].copy()
    for _ in range(5):
        obs, *_ = env.step(np.array([0.5, -0.25, 0.0, 0, 0, 0, -1.0]))
    moved = obs["agent_pos"][8:11] - start
    expected = 5 * POS_SCALE * np.array([0.5, -0.25, 0.0])  # (0.1, -0.05, 0) m
    # The TCP goes the commanded way; servo lag leaves it short of the full distance.
    along = moved @ expected / np.linalg.norm(expected)
    assert 0.5 * np.linalg.norm(expected) < along < 1.05 * np.linalg.norm(expected)
    assert np.linalg.norm(moved - along * expected / np.linalg.norm(expected)) < 0.01
    _, quat0 = env.engine.ee_pose()
    for _ in range(3):
        obs, *_ = env.step(np.array([0, 0, 0, 0, 0, 1.0, -1.0]))
    turn = quat_error(env.engine.ee_pose()[1], quat0)  # world-frame rotation vector
    assert 0.6 * 3 * ROT_SCALE < turn[2] < 1.05 * 3 * ROT_SCALE  # about world +z, with lag
    assert np.abs(turn[:2]).max() < 0.05
    env.close()


def test_state_quaternion_is_continuous_while_the_gripper_turns():
    env = TabletopEnv("stack", image_size=SMALL)
    expert = make_expert(env)
    obs, _ = env.reset(seed=2)
    quats = [obs["agent_pos"][11:]]
    for _ in range(60):
        obs, _, terminated, _, _ = env.step(expert.act(obs)[0])
        quats.append(obs["agent_pos"][11:])
        if terminated:
            break
    quats = np.array(quats)
    assert np.all(quats @ TCP_DOWN_QUAT > 0)
    assert np.abs(np.diff(quats, axis=0)).max() < 0.2  # no sign flips between steps
    env.close()
