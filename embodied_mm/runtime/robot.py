"""The robot interface the controller loop drives: simulated and real arms look the same.

Features are described LeRobot-style: ``{key: {"dtype": ..., "shape": (...), "names": [...]}}``
with the keys of ``embodied_mm.features``. An adapter owns the mapping between its hardware's
units and these features, the command that holds the robot still, and its default safety limits.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from embodied_mm.runtime.safety import SafetyConfig

FeatureSpec = dict[str, Any]


@dataclass
class RobotObservation:
    frame: dict[str, Any]  # LeRobot keys: images (H, W, 3) uint8, observation.state (S,) float32
    stamps: dict[str, float] = field(default_factory=dict)  # camera -> capture time (monotonic s)


class Robot(abc.ABC):
    """connect → (get_observation → send_action)* → disconnect."""

    name: str = "robot"
    #: Instruction for the policy, when the robot knows it (a sim task does); else the CLI's.
    task: str | None = None
    #: A simulated episode ended (success or time limit); real robots never set it.
    episode_done: bool = False
    #: Last ``info`` of a simulated step (``is_success`` ...); empty for real robots.
    info: dict[str, Any]

    def __init__(self) -> None:
        self.info = {}

    @property
    @abc.abstractmethod
    def observation_features(self) -> dict[str, FeatureSpec]: ...

    @property
    @abc.abstractmethod
    def action_features(self) -> dict[str, FeatureSpec]: ...

    @property
    def action_dim(self) -> int:
        return int(self.action_features["action"]["shape"][0])

    @property
    @abc.abstractmethod
    def is_connected(self) -> bool: ...

    @abc.abstractmethod
    def connect(self) -> None: ...

    @abc.abstractmethod
    def disconnect(self) -> None: ...

    @abc.abstractmethod
    def get_observation(self) -> RobotObservation: ...

    @abc.abstractmethod
    def send_action(self, action: np.ndarray) -> None:
        """Command (D,) in robot units; callers pass it through the safety filter first."""

    @abc.abstractmethod
    def hold_action(self) -> np.ndarray:
        """(D,) the command that keeps the robot where it is now."""

    def safe_stop(self) -> None:
        """Bring the robot to rest where it is (hold); the loop ends after this. A hold with
        NaN/inf in it is refused (ValueError) rather than sent."""
        self.send_action(check_hold(self, self.hold_action()))

    def default_safety(self) -> SafetyConfig:
        """The robot's own limits (joint limits, gripper range, workspace)."""
        return SafetyConfig()

    def ee_position_fn(self) -> Callable[[np.ndarray], np.ndarray] | None:
        """Maps a (D,) command to the (3,) TCP position it leads to, for the workspace check;
        None if the adapter cannot predict it."""
        return None

    def reset_episode(self, seed: int | None = None) -> None:  # noqa: B027 (sim only)
        """Start a new episode (simulators); real robots start where they are."""

    def __enter__(self) -> Robot:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.disconnect()


def check_action(robot: Robot, action: np.ndarray) -> np.ndarray:
    """The action as float64 (D,), or a ValueError naming the mismatch."""
    a = np.asarray(action, dtype=np.float64)
    if a.shape != (robot.action_dim,):
        raise ValueError(
            f"{robot.name} takes actions of shape ({robot.action_dim},), got {a.shape}"
        )
    return a


def check_hold(robot: Robot, hold: np.ndarray) -> np.ndarray:
    """The hold command as float64 (D,), or a ValueError when it has NaN/inf (a broken sensor
    reading must not become a motor command)."""
    h = np.asarray(hold, dtype=np.float64)
    if not np.isfinite(h).all():
        bad = np.flatnonzero(~np.isfinite(h)).tolist()
        raise ValueError(f"{robot.name}: the hold command has NaN/inf in dims {bad}; not sent")
    return h
