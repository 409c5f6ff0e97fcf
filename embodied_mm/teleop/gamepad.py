"""The gamepad teleoperator: end-effector deltas from the sticks through pygame's joystick API.

Nothing moves unless the deadman button is held: released, the device reports
``engaged=False`` and the robot holds (a zero delta, the gripper at its last command). Each
mapped axis has a dead zone (a stick at rest never reads exactly 0); beyond it the reading is
rescaled so full tilt still gives the full step. Button presses give the episode controls.
Taking over from a policy (``deploy --teleop``, Y) keeps the gripper where the policy left it
until the gripper button is next pressed or released.

Headless machines: SDL needs a video driver for its event loop, so the ``dummy`` driver is used
when none is set, and joystick events are let through without a focused window
(``SDL_JOYSTICK_ALLOW_BACKGROUND_EVENTS``). Pads appear under /dev/input (the user needs read
access to its event device, usually the ``input`` group).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from embodied_mm.errors import UsageError
from embodied_mm.features import ACTION
from embodied_mm.runtime.robot import FeatureSpec
from embodied_mm.teleop.base import TeleopCommand, Teleoperator
from embodied_mm.teleop.config import EE_DIM, GRIPPER, GamepadConfig
from embodied_mm.teleop.keyboard import EE_NAMES


def dead_zone(value: float, zone: float) -> float:
    """0 inside ``zone``; beyond it rescaled linearly to reach ±1 at ±1."""
    magnitude = abs(value) - zone
    if magnitude <= 0:
        return 0.0
    return float(np.sign(value) * min(1.0, magnitude / (1.0 - zone)))


def init_pygame_joysticks() -> Any:
    """pygame with its joystick subsystem up, on a machine without a display too."""
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    os.environ.setdefault("SDL_JOYSTICK_ALLOW_BACKGROUND_EVENTS", "1")
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    import pygame

    pygame.display.init()  # SDL's event loop, which updates the joysticks, needs it
    pygame.joystick.init()
    return pygame


class GamepadTeleop(Teleoperator):
    action_space = "ee_delta"

    def __init__(self, index: int = 0, config: GamepadConfig | None = None) -> None:
        self.index = index
        self.name = f"gamepad:{index}"
        self.config = config or GamepadConfig()
        self._pygame: Any = None
        self._joystick: Any = None
        # after a take-over: (the gripper command the policy left, the button's state then)
        self._kept_gripper: tuple[float, bool] | None = None

    @property
    def action_features(self) -> dict[str, FeatureSpec]:
        return {ACTION: {"dtype": "float32", "shape": (EE_DIM,), "names": EE_NAMES}}

    @property
    def is_connected(self) -> bool:
        return self._joystick is not None

    def connect(self) -> None:
        pygame = init_pygame_joysticks()
        pygame.event.pump()
        count = pygame.joystick.get_count()
        if self.index >= count:
            raise UsageError(
                f"no gamepad {self.index}: {count} connected (pads 0..{count - 1}); plug one in "
                "and check that its /dev/input/event* device is readable"
            )
        joystick = pygame.joystick.Joystick(self.index)
        joystick.init()
        cfg = self.config
        needed = {
            "axis": (max((a for a, _ in cfg.axes.values()), default=-1), joystick.get_numaxes()),
            "button": (
                max([cfg.deadman_button, cfg.close_gripper_button, *cfg.events]),
                joystick.get_numbuttons(),
            ),
        }
        for what, (highest, have) in needed.items():
            if highest >= have:
                raise UsageError(
                    f"gamepad {self.index} ({joystick.get_name()}) has {have} {what}s; the "
                    f"mapping uses {what} {highest}"
                )
        self._pygame, self._joystick = pygame, joystick

    def disconnect(self) -> None:
        if self._joystick is not None:
            self._joystick.quit()
            self._joystick = None

    def reset(self) -> None:
        self._kept_gripper = None

    def take_over(self, hold: np.ndarray) -> None:
        """Keep the policy's gripper command until the gripper button changes state."""
        pressed = bool(self._joystick.get_button(self.config.close_gripper_button))
        self._kept_gripper = (float(hold[GRIPPER]), pressed)

    def get_action(self) -> TeleopCommand:
        pygame, js, cfg = self._pygame, self._joystick, self.config
        events = set()
        me = js.get_instance_id()
        for event in pygame.event.get():  # also updates the joystick's state
            pressed = event.type == pygame.JOYBUTTONDOWN and event.instance_id == me
            if pressed and event.button in cfg.events:
                events.add(cfg.events[event.button])
        if not js.get_button(cfg.deadman_button):
            return TeleopCommand(None, events, engaged=False)
        action = np.zeros(EE_DIM)
        for dim, (axis, sign) in cfg.axes.items():
            scale = cfg.translation_scale if dim < 3 else cfg.rotation_scale
            action[dim] = sign * scale * dead_zone(js.get_axis(axis), cfg.dead_zone)
        pressed = bool(js.get_button(cfg.close_gripper_button))
        if self._kept_gripper is not None and self._kept_gripper[1] != pressed:
            self._kept_gripper = None  # the person works the gripper now
        kept = self._kept_gripper
        action[GRIPPER] = kept[0] if kept is not None else 1.0 if pressed else -1.0
        return TeleopCommand(action, events)
