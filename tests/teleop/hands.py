"""A person's hands on an SDL virtual pad, scripted by read: before read ``k`` the script's
moves for ``k`` are made on the virtual pad, then the real GamepadTeleop reads it."""

from __future__ import annotations

from embodied_mm.teleop.base import TeleopCommand, Teleoperator
from embodied_mm.teleop.gamepad import GamepadTeleop
from embodied_mm.teleop.virtual_gamepad import VirtualGamepad

LEFT_Y, RIGHT_Y = 1, 4
A, Y, LB, RB = 0, 3, 4, 5


class Hands(Teleoperator):
    def __init__(self, pad: GamepadTeleop, vpad: VirtualGamepad, script: dict) -> None:
        self.pad, self.vpad, self.script, self.reads = pad, vpad, script, 0
        self.name, self.action_space = pad.name, pad.action_space

    @property
    def action_features(self):
        return self.pad.action_features

    @property
    def is_connected(self) -> bool:
        return self.pad.is_connected

    def connect(self) -> None:
        self.pad.connect()

    def disconnect(self) -> None:
        self.pad.disconnect()

    def reset(self) -> None:
        self.pad.reset()

    def take_over(self, hold) -> None:
        self.pad.take_over(hold)

    def get_action(self) -> TeleopCommand:
        self.reads += 1
        for move in self.script.get(self.reads, []):
            move(self.vpad)
        return self.pad.get_action()
