"""The gamepad teleoperator on an SDL virtual joystick, read through pygame's joystick API."""

import numpy as np
import pytest

from embodied_mm.errors import UsageError
from embodied_mm.runtime.adapters.sim import TCP_XYZ, SimRobot
from embodied_mm.runtime.safety import SafetyFilter
from embodied_mm.teleop.base import TeleopEvent
from embodied_mm.teleop.config import GamepadConfig
from embodied_mm.teleop.control import teleop_step
from embodied_mm.teleop.gamepad import GamepadTeleop, dead_zone
from embodied_mm.teleop.virtual_gamepad import VirtualGamepad

LEFT_X, LEFT_Y, RIGHT_Y = 0, 1, 4
A, B, LB, RB, START = 0, 1, 4, 5, 7


@pytest.fixture
def pad():
    """(virtual pad, connected teleop); axes 4/5 of a virtual controller rest at -1 (triggers),
    so the test centres the right stick's y first."""
    vpad = VirtualGamepad()
    vpad.tilt(RIGHT_Y, 0.0)
    teleop = GamepadTeleop(vpad.index)
    teleop.connect()
    try:
        yield vpad, teleop
    finally:
        teleop.disconnect()
        vpad.close()


def test_no_motion_without_the_deadman(pad):
    vpad, teleop = pad
    vpad.tilt(LEFT_Y, -1.0)  # full forward
    cmd = teleop.get_action()
    assert not cmd.engaged
    vpad.press(LB)
    cmd = teleop.get_action()
    assert cmd.engaged
    np.testing.assert_allclose(cmd.action, [0.25, 0, 0, 0, 0, 0, -1], atol=1e-4)
    vpad.press(RB)  # close while held
    assert teleop.get_action().action[6] == 1.0


def test_the_dead_zone_swallows_a_resting_stick_and_rescales_the_rest(pad):
    vpad, teleop = pad
    vpad.press(LB)
    vpad.tilt(LEFT_X, 0.08)  # a stick at rest drifts: inside the 0.1 dead zone
    vpad.tilt(LEFT_Y, 0.55)
    action = teleop.get_action().action
    assert action[1] == 0.0
    np.testing.assert_allclose(action[0], -0.25 * (0.55 - 0.1) / 0.9, atol=1e-3)
    assert dead_zone(-1.0, 0.1) == -1.0 and dead_zone(0.1, 0.1) == 0.0


def test_buttons_give_the_episode_controls_once_per_press(pad):
    vpad, teleop = pad
    vpad.press(A)
    assert teleop.get_action().events == {TeleopEvent.NEXT}
    assert teleop.get_action().events == set()  # still held: no second press
    vpad.press(A, False)
    vpad.press(B)
    vpad.press(START)
    assert teleop.get_action().events == {TeleopEvent.RERECORD, TeleopEvent.STOP}


def test_with_the_deadman_released_the_robot_holds(pad):
    vpad, teleop = pad
    robot = SimRobot("embodied_mm/PickLift-v0")
    robot.connect()
    try:
        safety = SafetyFilter(robot.default_safety(), 20.0, robot.ee_position_fn())
        vpad.tilt(LEFT_Y, -1.0)  # the stick pushed fully, deadman not held
        start = robot.get_observation().frame["observation.state"][TCP_XYZ].copy()
        for _ in range(10):
            step = teleop_step(robot, teleop, safety)
            assert not step.command.engaged and not step.filtered.stop
            np.testing.assert_array_equal(step.filtered.action[:6], 0)
        held = robot.get_observation().frame["observation.state"][TCP_XYZ]
        assert np.abs(held - start).max() < 2e-3
        vpad.press(LB)  # now the same stick moves the arm
        for _ in range(10):
            teleop_step(robot, teleop, safety)
        moved = robot.get_observation().frame["observation.state"][TCP_XYZ]
        assert moved[0] - held[0] > 0.02  # 10 steps of 0.25 x 4 cm
    finally:
        robot.disconnect()


def test_a_missing_pad_or_a_mapping_beyond_it_is_refused(pad):
    vpad, _ = pad
    with pytest.raises(UsageError, match="no gamepad 5: 1 connected"):
        GamepadTeleop(5).connect()
    with pytest.raises(UsageError, match="has 12 buttons; the mapping uses button 20"):
        GamepadTeleop(vpad.index, GamepadConfig(deadman_button=20)).connect()
