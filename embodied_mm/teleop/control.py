"""One teleoperated control step: observe, read the device, filter, send.

The device's action goes through the robot's :class:`~embodied_mm.runtime.safety.SafetyFilter`
exactly as a policy's does (limits, per-step rate limit, workspace, watchdog, e-stop). A
released deadman sends the robot's hold command as a fresh action (the person is there, not
moving); a device with no reading sends nothing fresh, so the watchdog holds and then stops.
"""

from __future__ import annotations

from dataclasses import dataclass

from embodied_mm.runtime.robot import Robot, RobotObservation
from embodied_mm.runtime.safety import FilteredAction, SafetyFilter
from embodied_mm.teleop.base import TeleopCommand, Teleoperator


@dataclass
class TeleopStep:
    observation: RobotObservation  # before the action
    command: TeleopCommand  # what the device read
    filtered: FilteredAction  # what was sent (a stop: the robot's safe stop)


def teleop_step(robot: Robot, teleop: Teleoperator, safety: SafetyFilter) -> TeleopStep:
    obs = robot.get_observation()
    command = teleop.get_action()
    hold = robot.hold_action()
    action = command.action if command.engaged else hold
    filtered = safety.filter(action, hold, obs.stamps)
    if filtered.stop:
        robot.safe_stop()
    else:
        robot.send_action(filtered.action)
    return TeleopStep(obs, command, filtered)
