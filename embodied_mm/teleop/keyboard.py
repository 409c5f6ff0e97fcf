"""The keyboard teleoperator: end-effector deltas and the gripper, from the terminal.

Keys (:class:`~embodied_mm.teleop.config.KeyboardConfig`): w/s x, a/d y, r/f z, i/k roll,
j/l pitch, u/o yaw, c close and v open the gripper, space halts; → next episode, ← re-record,
Esc stop, Ctrl-C abort; t takes over from a policy and hands back (``deploy --teleop``).

A plain terminal reports presses, not releases: a key moves along its axis until
``key_hold_s`` after its last press or auto-repeat, so holding a key moves steadily once the
terminal's auto-repeat starts, and letting go stops within ``key_hold_s``. A terminal with the
kitty keyboard protocol reports releases: a key then moves until it is released (or, should a
release be lost, ``release_timeout_s`` after its last press or repeat).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from embodied_mm.features import ACTION
from embodied_mm.runtime.robot import FeatureSpec
from embodied_mm.teleop.base import TeleopCommand, Teleoperator
from embodied_mm.teleop.config import EE_DIM, GRIPPER, KeyboardConfig
from embodied_mm.teleop.terminal import TerminalKeys

EE_NAMES = ["x", "y", "z", "roll", "pitch", "yaw", "gripper"]


class KeyboardTeleop(Teleoperator):
    name = "keyboard"
    action_space = "ee_delta"

    def __init__(
        self,
        config: KeyboardConfig | None = None,
        keys: TerminalKeys | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config or KeyboardConfig()
        self.keys = keys or TerminalKeys()
        self.clock = clock
        self._until = np.zeros(GRIPPER)  # per axis: move until this time
        self._direction = np.zeros(GRIPPER)  # (6,) ±1 of the last key on each axis
        self.gripper = -1.0  # open: our envs start open

    @property
    def action_features(self) -> dict[str, FeatureSpec]:
        return {ACTION: {"dtype": "float32", "shape": (EE_DIM,), "names": EE_NAMES}}

    @property
    def is_connected(self) -> bool:
        return self.keys.is_open

    def connect(self) -> None:
        self.keys.open()
        self.reset()

    def reset(self) -> None:
        """No axis moving, the gripper open (as our envs start)."""
        self._until[:] = 0
        self.gripper = -1.0

    def disconnect(self) -> None:
        self.keys.close()

    def take_over(self, hold: np.ndarray) -> None:
        """No axis moving; the gripper where the policy left it (closed stays closed)."""
        self._until[:] = 0
        self.gripper = 1.0 if float(hold[GRIPPER]) > 0 else -1.0

    def get_action(self) -> TeleopCommand:
        """(7,) ee_delta: the axes whose key was pressed within ``key_hold_s``."""
        cfg = self.config
        now = self.clock()
        events = set()
        hold_s = cfg.release_timeout_s if self.keys.reports_releases else cfg.key_hold_s
        for event in self.keys.poll():
            key = event.key
            if key in cfg.keys:
                dim, sign = cfg.keys[key]
                if event.kind == "release":
                    if self._direction[dim] == sign:
                        self._until[dim] = 0
                else:
                    self._direction[dim] = sign
                    self._until[dim] = now + hold_s
            elif event.kind != "press":
                continue  # the rest act once per press
            elif key == cfg.halt:
                self._until[:] = 0
            elif key == cfg.close_gripper:
                self.gripper = 1.0
            elif key == cfg.open_gripper:
                self.gripper = -1.0
            elif key in cfg.events:
                events.add(cfg.events[key])
        moving = self._until > now
        scale = np.array([cfg.translation_scale] * 3 + [cfg.rotation_scale] * 3)
        action = np.append(np.where(moving, self._direction * scale, 0.0), self.gripper)
        return TeleopCommand(action, events)
