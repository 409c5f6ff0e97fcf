"""The Dynamixel arm adapter on an emulated Koch arm."""

import time

import numpy as np
import pytest

from embodied_mm.features import OBS_STATE
from embodied_mm.runtime.adapters.dynamixel import DynamixelRobot
from embodied_mm.runtime.dynamixel.bus import BusError, HardwareError
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


def ticks(rad: float, motor_id: int) -> int:
    """Goal register value of ``rad`` on the test calibration's motor ``motor_id``."""
    direction = 1 if (motor_id - 1) % 2 == 0 else -1
    return round(2048 + direction * rad * 4096 / (2 * np.pi))


def test_disconnect_keeps_torque_on_and_holds_where_the_arm_is():
    with MotorBusEmulator(list(range(1, 7)), max_step_ticks=5) as emu:
        robot = DynamixelRobot(emu.port, koch_calibration())
        robot.connect()
        robot.send_action(np.array([0.5, 0.0, 0.0, 0.0, 0.0, 0.0]))
        robot.get_observation()  # the shoulder is on its way (5 ticks per read), not there
        robot.disconnect()
        assert all(m.torque for m in emu.motors.values())  # the arm does not fall
        shoulder = emu.motors[1]
        # the hold is a SYNC WRITE, which gets no answer: the emulator's thread may apply it
        # just after the port has closed
        deadline = time.monotonic() + 5
        while shoulder.goal != shoulder.present and time.monotonic() < deadline:
            time.sleep(0.01)
        assert 2048 < shoulder.goal == shoulder.present < ticks(0.5, 1)  # stopped, held


def test_release_on_disconnect_turns_torque_off():
    with MotorBusEmulator(list(range(1, 7))) as emu:
        robot = DynamixelRobot(emu.port, koch_calibration(), release_on_disconnect=True)
        robot.connect()
        robot.disconnect()
        assert not any(m.torque for m in emu.motors.values())


def test_hold_keeps_the_gripper_target_when_an_object_blocks_it(arm):
    emu, robot = arm
    emu.block(6, 2048 - 100)  # an object in the jaws: the gripper stops 100 ticks in
    robot.send_action(np.array([0.2, 0.0, 0.0, 0.0, 0.0, 0.5]))  # close (direction -1)
    present = robot.get_observation().frame[OBS_STATE]
    assert emu.motors[6].present == 2048 - 100
    hold = robot.hold_action()
    np.testing.assert_allclose(hold[:5], present[:5], rtol=1e-6)  # arm: where it is
    assert hold[5] == 0.5  # gripper: still squeezing, not "where it is"
    robot.safe_stop()
    assert emu.motors[6].goal == ticks(0.5, 6) and emu.motors[6].present == 2048 - 100
    assert emu.motors[1].goal == ticks(0.2, 1)


def test_safe_stop_when_a_motor_stops_answering(arm):
    emu, robot = arm
    robot.send_action(np.array([0.3, 0.0, 0.0, 0.0, 0.0, 0.0]))
    robot.get_observation()
    emu.silence(4)
    with pytest.raises(BusError):
        robot.get_observation()
    robot.safe_stop()  # the joints cannot be read: the motors keep their last goal
    assert emu.motors[1].goal == ticks(0.3, 1)
    robot.disconnect()
    assert all(m.torque for m in emu.motors.values())  # no motor was let go


def test_a_nonfinite_action_is_refused_before_the_bus(arm):
    emu, robot = arm
    goals = [m.goal for m in emu.motors.values()]
    with pytest.raises(ValueError, match=r"NaN/inf in joints \[2\]"):
        robot.send_action(np.array([0.1, 0.1, np.nan, 0.0, 0.0, 0.0]))
    assert [m.goal for m in emu.motors.values()] == goals
