"""``deploy --teleop DEVICE``: the device (and the terminal keys beside it) wired for take-over.

The device specs and configs are ``record --teleop``'s (:mod:`embodied_mm.teleop.factory`).
A gamepad or a leader arm also gets the terminal's keys when stdin is a terminal, so ``t``
(take over / hand back), → (next episode), Esc (stop) and Ctrl-C (e-stop) work beside it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager

from embodied_mm.errors import UsageError
from embodied_mm.runtime.intervention import EventSource, Takeover
from embodied_mm.runtime.robot import Robot
from embodied_mm.runtime.safety import EStop
from embodied_mm.teleop.base import Teleoperator, check_fits
from embodied_mm.teleop.config import KeyboardConfig
from embodied_mm.teleop.keyboard import KeyboardTeleop
from embodied_mm.teleop.terminal import TerminalKeys


@contextmanager
def takeover_session(
    device: Teleoperator,
    robot: Robot,
    estop: EStop,
    on_event: Callable[[str], None] | None = None,
) -> Iterator[Takeover]:
    """Connect ``device`` to the (connected) ``robot`` and yield the :class:`Takeover`; the
    device and the terminal are released on exit.

    Raises:
        UsageError: the device does not fit the robot, or cannot be connected.
    """
    from embodied_mm.runtime.servo_bus import BusError, HardwareError

    check_fits(device, robot)  # before the device takes the terminal
    with ExitStack() as held:
        try:
            device.connect()
        except (BusError, HardwareError, OSError) as e:
            raise UsageError(f"cannot connect --teleop {device.name}: {e}") from e
        held.callback(device.disconnect)
        device.attach(robot)
        controls: list[EventSource] = []
        if not isinstance(device, KeyboardTeleop) and sys.stdin.isatty() and sys.stdout.isatty():
            keys = TerminalKeys()
            keys.open()
            held.callback(keys.close)
            mapping = KeyboardConfig().events
            controls.append(lambda: [mapping[k] for k in keys.presses() if k in mapping])
        yield Takeover(device, controls, estop, on_event)
