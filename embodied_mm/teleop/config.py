"""Per-device mapping configs: how a device's readings become robot actions.

Keyboard and gamepad map into ``ee_delta`` (7,): TCP translation x, y, z and rotation about the
world x, y, z, each in [-1, 1] of the env's full step, then the gripper (-1 open, 1 closed). A
leader arm maps into ``joint_pos``: its calibrated joint radians become the follower's targets
one to one, and its gripper's calibrated range is rescaled onto the follower's.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from embodied_mm.errors import UsageError
from embodied_mm.teleop.base import TeleopEvent

EE_DIM = 7  # ee_delta: dx dy dz droll dpitch dyaw gripper
GRIPPER = 6


def _check_scale(name: str, value: float) -> None:
    if not 0 < value <= 1:
        raise UsageError(
            f"{name} must be in (0, 1] (a fraction of the env's full step), got {value}"
        )


@dataclass
class KeyboardConfig:
    """``keys``: key -> (ee_delta dimension, direction). A key press moves along its axis for
    ``key_hold_s`` after its last press or auto-repeat (a plain terminal sends no key
    releases); with the kitty keyboard protocol, until its release, or ``release_timeout_s``
    after its last press or repeat should the release be lost. ``halt`` stops all motion at
    once. ``translation_scale``/``rotation_scale``: the size of a
    step in [0, 1] of the env's full-scale delta."""

    keys: dict[str, tuple[int, int]] = field(
        default_factory=lambda: {
            "w": (0, 1), "s": (0, -1),  # x: forward / back
            "a": (1, 1), "d": (1, -1),  # y: left / right
            "r": (2, 1), "f": (2, -1),  # z: up / down
            "i": (3, 1), "k": (3, -1),  # roll
            "j": (4, 1), "l": (4, -1),  # pitch
            "u": (5, 1), "o": (5, -1),  # yaw
        }
    )  # fmt: skip
    close_gripper: str = "c"
    open_gripper: str = "v"
    halt: str = " "
    events: dict[str, TeleopEvent] = field(
        default_factory=lambda: {
            "KEY_RIGHT": TeleopEvent.NEXT,
            "KEY_LEFT": TeleopEvent.RERECORD,
            "KEY_ESCAPE": TeleopEvent.STOP,
            "KEY_CTRL_C": TeleopEvent.ABORT,
            "t": TeleopEvent.TAKEOVER,  # deploy: take over from the policy / hand back
        }
    )
    key_hold_s: float = 0.15
    release_timeout_s: float = 1.0
    translation_scale: float = 0.25
    rotation_scale: float = 0.25

    def __post_init__(self) -> None:
        _check_scale("translation_scale", self.translation_scale)
        _check_scale("rotation_scale", self.rotation_scale)
        for name in ("key_hold_s", "release_timeout_s"):
            if getattr(self, name) <= 0:
                raise UsageError(f"{name} must be > 0, got {getattr(self, name)}")
        for key, (dim, sign) in self.keys.items():
            if not 0 <= dim < GRIPPER or sign not in (-1, 1):
                raise UsageError(
                    f"keyboard key {key!r}: needs (dimension 0..5, direction ±1), got {(dim, sign)}"
                )


@dataclass
class GamepadConfig:
    """``axes``: ee_delta dimension -> (joystick axis index, direction). An axis inside
    ``dead_zone`` (of its full range) reads 0, the rest is rescaled to reach 1 at full tilt.
    Nothing moves unless ``deadman_button`` is held. The defaults are an Xbox-style pad as
    pygame sees it on Linux (axes 0/1 left stick x/y, 2 left trigger, 3/4 right stick x/y,
    5 right trigger; buttons 0 A, 1 B, 2 X, 3 Y, 4 LB, 5 RB, 6 back, 7 start): left stick
    x/y, right stick z/yaw, LB deadman, RB closes the gripper while held, Y takes over from a
    policy and hands back (``deploy --teleop``)."""

    axes: dict[int, tuple[int, int]] = field(
        default_factory=lambda: {0: (1, -1), 1: (0, -1), 2: (4, -1), 5: (3, -1)}
    )
    deadman_button: int = 4
    close_gripper_button: int = 5  # held: closed; released: open
    events: dict[int, TeleopEvent] = field(
        default_factory=lambda: {
            0: TeleopEvent.NEXT,
            1: TeleopEvent.RERECORD,
            3: TeleopEvent.TAKEOVER,  # Y. deploy: take over from the policy / hand back
            7: TeleopEvent.STOP,
        }
    )
    dead_zone: float = 0.1
    translation_scale: float = 0.25
    rotation_scale: float = 0.25

    def __post_init__(self) -> None:
        _check_scale("translation_scale", self.translation_scale)
        _check_scale("rotation_scale", self.rotation_scale)
        if not 0 <= self.dead_zone < 1:
            raise UsageError(f"dead_zone must be in [0, 1), got {self.dead_zone}")
        for dim, (axis, sign) in self.axes.items():
            if not 0 <= dim < GRIPPER or axis < 0 or sign not in (-1, 1):
                raise UsageError(
                    f"gamepad axis map {dim}: {(axis, sign)}: needs dimension 0..5 -> "
                    "(axis index >= 0, direction ±1)"
                )


@dataclass
class LeaderConfig:
    """``rescale_gripper``: map the leader gripper's calibrated range onto the follower's (a
    leader's handle travels differently from the follower's jaws); arm joints follow one to
    one in radians."""

    gripper: str | None = "gripper"
    rescale_gripper: bool = True
