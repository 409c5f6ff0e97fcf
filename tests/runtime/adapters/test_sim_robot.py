"""The sim adapter on both engines and both action modes."""

import time

import numpy as np
import pytest

from embodied_mm.features import OBS_STATE, image_key
from embodied_mm.runtime.adapters.sim import SimRobot, make_env
from embodied_mm.runtime.safety import SafetyFilter


@pytest.mark.parametrize("engine", ["mujoco", "pybullet"])
def test_features_observation_and_hold(engine):
    with SimRobot("reach", engine=engine, seed=3) as robot:
        feats = robot.observation_features
        assert feats[image_key("front")]["shape"] == (128, 128, 3)
        assert feats[OBS_STATE]["shape"] == (15,)
        assert robot.action_features["action"]["names"][-1] == "gripper"
        assert robot.task  # the env's instruction
        obs = robot.get_observation()
        assert set(obs.stamps) == {"front", "wrist"}
        assert abs(obs.stamps["front"] - time.monotonic()) < 10
        before = obs.frame[OBS_STATE].copy()
        for _ in range(3):
            robot.send_action(robot.hold_action())
        after = robot.get_observation().frame[OBS_STATE]
        np.testing.assert_allclose(after[8:11], before[8:11], atol=5e-3)  # TCP stayed put


def test_joint_pos_hold_keeps_joints():
    with SimRobot("reach", engine="mujoco", action_mode="joint_pos") as robot:
        hold = robot.hold_action()
        assert hold.shape == (8,)
        q0 = robot.get_observation().frame[OBS_STATE][:7].copy()
        robot.send_action(hold)
        np.testing.assert_allclose(robot.get_observation().frame[OBS_STATE][:7], q0, atol=2e-2)
        cfg = robot.default_safety()
        assert cfg.gripper_index == 7 and cfg.max_velocity is not None
        safety = SafetyFilter(cfg, 20.0)
        big = hold + np.r_[np.ones(7), 0.0]  # +1 rad on every joint in one step
        out = safety.filter(big, hold)
        assert "max_delta" in [i.value for i in out.interventions]
        np.testing.assert_allclose(out.action[:7] - hold[:7], 0.1, atol=1e-9)  # 2 rad/s at 20 Hz


def test_ee_delta_workspace_check_uses_the_tcp():
    with SimRobot("reach", engine="mujoco") as robot:
        fn = robot.ee_position_fn()
        tcp = robot.get_observation().frame[OBS_STATE][8:11]
        np.testing.assert_allclose(
            fn(np.r_[1.0, 0, 0, 0, 0, 0, 0]), tcp + np.array([0.04, 0, 0]), atol=1e-6
        )


def test_unknown_env_lists_known_ones():
    with pytest.raises(KeyError, match="pick_lift"):
        make_env("no_such_task")


def test_registered_gymnasium_id():
    with SimRobot("embodied_mm/ReachObject-v0", engine="pybullet") as robot:
        assert robot.env.unwrapped.engine_name == "pybullet"
        robot.send_action(robot.hold_action())
        assert robot.info["task"] == robot.task and not robot.episode_done
