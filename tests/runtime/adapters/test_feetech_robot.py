"""The SO-100/SO-101 adapter on an emulated STS3215 bus, through feetech-servo-sdk."""

import time

import numpy as np
import pytest

from embodied_mm.features import OBS_STATE
from embodied_mm.runtime.adapters.feetech import FeetechRobot
from embodied_mm.runtime.feetech import control_table as ct
from embodied_mm.runtime.feetech.bus import BusError, HardwareError
from embodied_mm.runtime.feetech.calibration import (
    JOINT_NAMES,
    RAD_PER_TICK,
    Calibration,
    JointCalibration,
)
from embodied_mm.runtime.feetech.emulator import FeetechBusEmulator

IDS = list(range(1, 7))
OFFSET = 100  # every servo's homing offset in the test file
INVERTED = 2  # shoulder_lift has drive mode 1


def so101_calibration() -> Calibration:
    return Calibration(
        "so101",
        [
            JointCalibration(n, i, OFFSET, 2048 - 1000, 2048 + 1000, int(i == INVERTED))
            for n, i in zip(JOINT_NAMES, IDS, strict=True)
        ],
    )


def ticks(rad: float, motor_id: int) -> int:
    """Goal/present register value of ``rad`` on servo ``motor_id`` of the test file."""
    sign = -1 if motor_id == INVERTED else 1
    return round(2048 + sign * rad / RAD_PER_TICK)


@pytest.fixture
def arm():
    """A connected arm; servo 3 was left in velocity mode (Operating_Mode 1) by another tool."""
    with FeetechBusEmulator(IDS) as emu:
        emu.set_positions({i: 2048 + OFFSET + 50 * i for i in IDS})  # encoder ticks
        emu.motors[3].put(ct.OPERATING_MODE, 1)
        robot = FeetechRobot(emu.port, so101_calibration())
        robot.connect()
        try:
            yield emu, robot
        finally:
            robot.disconnect()


def test_connect_writes_the_calibration_then_holds_with_torque_on(arm):
    emu, robot = arm
    for m in emu.motors.values():
        assert m.get(ct.OPERATING_MODE) == ct.POSITION_MODE
        assert m.get(ct.HOMING_OFFSET) == OFFSET
        assert (m.get(ct.MIN_POSITION_LIMIT), m.get(ct.MAX_POSITION_LIMIT)) == (1048, 3048)
        assert m.get(ct.P_COEFFICIENT) == 16 and m.get(ct.LOCK) == 1
        assert m.torque and m.get(ct.GOAL_POSITION) == m.present == 2048 + 50 * m.motor_id
    state = robot.get_observation().frame[OBS_STATE]
    assert state.dtype == np.float32 and state.shape == (6,)
    np.testing.assert_allclose(state[0], 50 * RAD_PER_TICK, rtol=1e-5)
    np.testing.assert_allclose(state[1], -100 * RAD_PER_TICK, rtol=1e-5)  # drive mode 1
    assert robot.action_features["action"]["names"] == list(JOINT_NAMES)
    assert robot.name == "so101"


def test_send_action_moves_the_servos_within_the_range(arm):
    emu, robot = arm
    robot.send_action(np.array([0.5, -0.5, 0.0, 0.0, 0.0, 9.0]))  # gripper beyond its range
    state = robot.get_observation().frame[OBS_STATE]
    np.testing.assert_allclose(state, [0.5, -0.5, 0, 0, 0, 1000 * RAD_PER_TICK], atol=RAD_PER_TICK)
    assert emu.motors[2].present == ticks(-0.5, 2) > 2048  # inverted: negative rad, more ticks
    with pytest.raises(ValueError, match=r"shape \(6,\)"):
        robot.send_action(np.zeros(7))


def test_default_safety_uses_the_calibrated_range(arm):
    _, robot = arm
    cfg = robot.default_safety()
    np.testing.assert_allclose(cfg.action_high, [1000 * RAD_PER_TICK] * 6)
    np.testing.assert_allclose(cfg.action_low, [-1000 * RAD_PER_TICK] * 6)
    assert cfg.gripper_index == 5


def test_a_hardware_error_names_the_servo_and_its_cause(arm):
    emu, robot = arm
    emu.set_hardware_error(4, 0x04)
    with pytest.raises(HardwareError, match=r"motor 4 \(wrist_flex\): overheating"):
        robot.get_observation()
    emu.set_hardware_error(4, 0)


def test_hold_keeps_the_gripper_target_when_an_object_blocks_it(arm):
    emu, robot = arm
    emu.block(6, 2048 + 400)  # an object in the jaws (the gripper is at 2048 + 300 now)
    robot.send_action(np.array([0.2, 0.0, 0.0, 0.0, 0.0, 1.0]))  # close: towards 2048 + 652
    present = robot.get_observation().frame[OBS_STATE]
    assert emu.motors[6].present == 2048 + 400
    hold = robot.hold_action()
    np.testing.assert_allclose(hold[:5], present[:5], rtol=1e-6)  # arm: where it is
    assert hold[5] == 1.0  # gripper: still squeezing
    robot.safe_stop()
    assert emu.motors[6].get(ct.GOAL_POSITION) == ticks(1.0, 6)
    assert emu.motors[1].get(ct.GOAL_POSITION) == ticks(0.2, 1)


def test_a_servo_that_stops_answering_is_named_and_the_arm_keeps_holding(arm):
    emu, robot = arm
    robot.send_action(np.array([0.3, 0.0, 0.0, 0.0, 0.0, 0.0]))
    robot.get_observation()
    emu.silence(4)
    with pytest.raises(BusError, match=r"motor 4 \(wrist_flex\) did not answer"):
        robot.get_observation()
    robot.safe_stop()  # the joints cannot be read: the servos keep their last goal
    assert emu.motors[1].get(ct.GOAL_POSITION) == ticks(0.3, 1)
    robot.disconnect()
    assert all(m.torque for m in emu.motors.values())  # no servo was let go


def test_disconnect_holds_and_release_on_disconnect_lets_go():
    with FeetechBusEmulator(IDS, max_step_ticks=5) as emu:
        emu.set_positions({i: 2048 + OFFSET for i in IDS})
        robot = FeetechRobot(emu.port, so101_calibration())
        robot.connect()
        robot.send_action(np.array([0.5, 0.0, 0.0, 0.0, 0.0, 0.0]))
        robot.get_observation()  # on its way (5 ticks per read), not there
        robot.disconnect()  # the hold: a SYNC READ, then a SYNC WRITE (no answer)
        pan = emu.motors[1]
        # the port is closed, so no read round trip can follow the write: give the
        # emulator's thread time to apply it (docs/CONTRIBUTING.md)
        deadline = time.monotonic() + 10
        while pan.get(ct.GOAL_POSITION) == ticks(0.5, 1) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert all(m.torque for m in emu.motors.values())
        assert 2048 < pan.get(ct.GOAL_POSITION) == pan.present < ticks(0.5, 1)  # stopped, held
        robot = FeetechRobot(emu.port, so101_calibration(), release_on_disconnect=True)
        robot.connect()  # torque on and the calibration already there: nothing to write
        robot.disconnect()
        assert not any(m.torque for m in emu.motors.values())


def test_a_held_arm_with_another_calibration_is_not_let_go():
    with FeetechBusEmulator(IDS) as emu:
        robot = FeetechRobot(emu.port, so101_calibration())
        robot.connect()
        robot.disconnect()  # holds, torque on
        other = so101_calibration()
        other.joints[2].homing_offset = -40
        with pytest.raises(BusError, match=r"motor 3 \(elbow_flex\) has torque on and holds"):
            FeetechRobot(emu.port, other).connect()
        assert all(m.torque for m in emu.motors.values())
        assert emu.motors[3].get(ct.HOMING_OFFSET) == OFFSET


def test_a_servo_that_is_not_an_sts3215_is_refused():
    with FeetechBusEmulator(IDS) as emu:
        emu.motors[5].put(ct.MODEL_NUMBER, 1284)
        with pytest.raises(BusError, match=r"motor 5 \(wrist_roll\) is model 1284"):
            FeetechRobot(emu.port, so101_calibration()).connect()
        assert not any(m.torque for m in emu.motors.values())


def test_a_nonfinite_action_is_refused_before_the_bus(arm):
    emu, robot = arm
    goals = [m.get(ct.GOAL_POSITION) for m in emu.motors.values()]
    with pytest.raises(ValueError, match=r"NaN/inf in joints \[2\]"):
        robot.send_action(np.array([0.1, 0.1, np.nan, 0.0, 0.0, 0.0]))
    assert [m.get(ct.GOAL_POSITION) for m in emu.motors.values()] == goals
