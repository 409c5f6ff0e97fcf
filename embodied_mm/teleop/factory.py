"""``--teleop`` specs: ``keyboard``, ``gamepad`` (or ``gamepad:<index>``), ``leader:<port>``."""

from __future__ import annotations

from pathlib import Path

from embodied_mm.errors import UsageError
from embodied_mm.teleop.base import Teleoperator

SPECS = "keyboard, gamepad[:<index>] or leader:<port>"


def make_teleop(
    spec: str, calibration: Path | None = None, follower_kind: str | None = None
) -> Teleoperator:
    """The device a spec names (not connected). A leader needs its own ``calibration`` file;
    its bus is the follower's kind (Feetech for so100/so101, else Dynamixel)."""
    kind, _, target = spec.partition(":")
    if kind == "keyboard" and not target:
        from embodied_mm.teleop.keyboard import KeyboardTeleop

        return KeyboardTeleop()
    if kind == "gamepad":
        from embodied_mm.teleop.gamepad import GamepadTeleop

        try:
            index = int(target or 0)
        except ValueError:
            raise UsageError(f"--teleop {spec!r}: the gamepad index must be a number") from None
        return GamepadTeleop(index)
    if kind == "leader" and target:
        if calibration is None:
            raise UsageError(
                "--teleop leader:<port> needs --teleop-calibration FILE (the leader arm's own "
                "calibration, from `embodied-mm calibrate`)"
            )
        from embodied_mm.teleop import leader

        make = (
            leader.feetech_leader
            if follower_kind in ("so100", "so101")
            else leader.dynamixel_leader
        )
        try:
            return make(target, calibration)
        except (FileNotFoundError, ValueError, KeyError) as e:
            raise UsageError(f"--teleop-calibration {calibration}: {e}") from e
    raise UsageError(f"unknown --teleop {spec!r}; accepted: {SPECS}")
