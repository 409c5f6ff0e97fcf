"""The Dynamixel arm adapter on an emulated Koch arm."""

import numpy as np
import pytest

from embodied_mm.features import OBS_STATE
from embodied_mm.runtime.adapters.dynamixel import DynamixelRobot
from embodied_mm.runtime.dynamixel.bus import HardwareError
from embodied_mm.runtime.dynamixel.calibration import Calibration, JointCalibration
from embodied_mm.runtime.dynamixel.emulator import MotorBusEmulator

NAMES = ["shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper"]


def koch_calibration() -> Calibration:
    return Calibration(
        "koch",
        [
            JointCalibration(n, i + 1, 2048, 1 if i % 2 == 0 else -1, -1.5, 1.5)
            for i, n in enumerate(NAMES)
        ],
    )


@pytest.fixture
def arm():
    with MotorBusEmulator(list(range(1, 7))) as emu:
        emu.set_positions({i: 2048 + 100 * i for i in range(1, 7)})
        robot = DynamixelRobot(emu.port, koch_calibration())
        robot.connect()
        try:
            yield emu, robot
        finally:
            robot.disconnect()


def test_connect_holds_position_and_enables_torque(arm):
    emu, robot = arm
    assert all(m.torque and m.goal == m.present for m in emu.motors.values())
    state = robot.get_observation().frame[OBS_STATE]
    assert state.dtype == np.float32 and state.shape == (6,)
    np.testing.assert_allclose(state[0], 100 * 2 * np.pi / 4096, rtol=1e-5)
    np.testing.assert_allclose(state[1], -200 * 2 * np.pi / 4096, rtol=1e-5)  # direction -1
    assert robot.action_features["action"]["names"] == NAMES


def test_send_action_moves_motors_within_limits(arm):
    _emu, robot = arm
    robot.send_action(np.array([0.5, -0.5, 0.0, 0.0, 0.0, 9.0]))  # gripper beyond its limit
    state = robot.get_observation().frame[OBS_STATE]
    np.testing.assert_allclose(state, [0.5, -0.5, 0, 0, 0, 1.5], atol=2 * np.pi / 4096)
    with pytest.raises(ValueError, match=r"shape \(6,\)"):
        robot.send_action(np.zeros(7))


def test_safe_stop_holds_where_the_arm_is(arm):
    emu, robot = arm
    emu.set_positions({3: 2048 + 300})
    robot.safe_stop()
    assert emu.motors[3].goal == 2048 + 300 and emu.motors[3].torque


def test_default_safety_uses_calibration_limits(arm):
    _, robot = arm
    cfg = robot.default_safety()
    np.testing.assert_allclose(cfg.action_high, [1.5] * 6)
    assert cfg.gripper_index == 5


def test_hardware_error_surfaces(arm):
    emu, robot = arm
    emu.set_hardware_error(4, 0x04)
    with pytest.raises(HardwareError, match="motor 4: overheating"):
        robot.get_observation()
    emu.set_hardware_error(4, 0)


def test_disconnect_disables_torque():
    with MotorBusEmulator(list(range(1, 7))) as emu:
        robot = DynamixelRobot(emu.port, koch_calibration())
        robot.connect()
        robot.disconnect()
        assert not any(m.torque for m in emu.motors.values())
