"""One emulated bus with three motors, opened through the real dynamixel-sdk."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from embodied_mm.runtime.dynamixel.bus import DynamixelBus
from embodied_mm.runtime.dynamixel.emulator import MotorBusEmulator

IDS = [1, 2, 3]


@contextmanager
def open_rig(retries: int, torque: bool = False) -> Iterator[tuple[MotorBusEmulator, DynamixelBus]]:
    """The emulator and an open bus on its pseudo-terminal (torque on when asked)."""
    with MotorBusEmulator(IDS) as emu:
        bus = DynamixelBus(emu.port, retries=retries)
        bus.open()
        try:
            if torque:
                bus.set_torque(IDS, True)
            yield emu, bus
        finally:
            bus.close()
