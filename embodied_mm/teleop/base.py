"""The teleoperator interface, beside :class:`~embodied_mm.runtime.robot.Robot`.

connect → attach(robot) → (get_action)* → disconnect. Each read gives a :class:`TeleopCommand`:
an action in the robot's action space (``ee_delta`` or ``joint_pos``, the device's config maps
into it), plus the episode controls pressed since the last read (next, re-record, stop).

Two ways of not moving the robot differ: ``engaged=False`` says the person is not commanding
(a gamepad's deadman released): the robot holds, and that is a normal step. ``action=None``
with ``engaged=True`` says the device gave no reading (a leader arm's bus stopped answering):
that is a missing command, which the safety filter's watchdog holds and, if it lasts, stops.
"""

from __future__ import annotations

import abc
import enum
from dataclasses import dataclass, field

import numpy as np

from embodied_mm.errors import UsageError
from embodied_mm.features import ACTION
from embodied_mm.runtime.robot import FeatureSpec, Robot

ACTION_SPACES = ("ee_delta", "joint_pos")


class TeleopEvent(str, enum.Enum):
    NEXT = "next"  # end this episode and keep it
    RERECORD = "rerecord"  # drop this episode and record it again
    STOP = "stop"  # keep this episode and end the recording
    ABORT = "abort"  # Ctrl-C: hold the robot, drop this episode, end the recording
    TAKEOVER = "takeover"  # deploy: the person takes over from the policy, or hands back


@dataclass
class TeleopCommand:
    action: np.ndarray | None  # (D,) float64 in robot units; None: no reading this step
    events: set[TeleopEvent] = field(default_factory=set)
    engaged: bool = True  # False: the person lets go (deadman released), the robot holds


class Teleoperator(abc.ABC):
    """A device a person drives the robot with."""

    name: str = "teleop"
    #: "ee_delta" or "joint_pos": the robot action space the device's actions are in.
    action_space: str = "ee_delta"

    @property
    @abc.abstractmethod
    def action_features(self) -> dict[str, FeatureSpec]: ...

    @property
    def action_dim(self) -> int:
        return int(self.action_features[ACTION]["shape"][0])

    @property
    @abc.abstractmethod
    def is_connected(self) -> bool: ...

    @abc.abstractmethod
    def connect(self) -> None: ...

    @abc.abstractmethod
    def disconnect(self) -> None: ...

    def attach(self, robot: Robot) -> None:  # noqa: B027 (most devices need nothing)
        """Called with the connected robot before the first read: a device that maps into the
        robot's ranges (a leader's gripper) takes them here."""

    def reset(self) -> None:  # noqa: B027 (devices without state need nothing)
        """Start of an episode (the robot was just reset): forget motion still held from the
        last one."""

    def take_over(self, hold: np.ndarray) -> None:  # noqa: B027 (absolute devices need nothing)
        """The person takes over from a policy (``deploy --teleop``); ``hold`` (D,) is the
        robot's hold command now. A device whose gripper is a latched state (the keyboard's
        c/v) starts from the gripper the policy left, so that taking over never drops a
        grasp; no motion is carried over from before."""

    @abc.abstractmethod
    def get_action(self) -> TeleopCommand:
        """The command now; never blocks longer than one device read."""

    def __enter__(self) -> Teleoperator:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.disconnect()


def robot_action_space(robot: Robot) -> str:
    """A robot's action space: simulated robots say it (``action_mode``); servo arms take joint
    positions."""
    return str(getattr(robot, "action_mode", "joint_pos"))


def check_fits(teleop: Teleoperator, robot: Robot) -> None:
    """A :class:`UsageError` unless the device's actions are the robot's (space and size)."""
    space = robot_action_space(robot)
    if teleop.action_space != space or teleop.action_dim != robot.action_dim:
        raise UsageError(
            f"teleop {teleop.name} gives {teleop.action_space} actions of size "
            f"{teleop.action_dim}; robot {robot.name} takes {space} actions of size "
            f"{robot.action_dim}"
            + (
                " (use --teleop leader:<port> for a servo arm)"
                if space == "joint_pos"
                else " (use --teleop keyboard or gamepad)"
            )
        )
