"""One emulated STS3215 bus with three servos, opened through the real feetech-servo-sdk."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from embodied_mm.runtime.feetech.bus import FeetechBus
from embodied_mm.runtime.feetech.emulator import FeetechBusEmulator

IDS = [1, 2, 3]
NAMES = {1: "shoulder_pan", 2: "shoulder_lift", 3: "elbow_flex"}


@contextmanager
def open_rig(
    retries: int, torque: bool = False, max_step_ticks: int | None = None
) -> Iterator[tuple[FeetechBusEmulator, FeetechBus]]:
    """The emulator and an open bus on its pseudo-terminal (torque on when asked)."""
    with FeetechBusEmulator(IDS, max_step_ticks) as emu:
        bus = FeetechBus(emu.port, retries=retries, motor_names=NAMES)
        bus.open()
        try:
            if torque:
                bus.set_torque(IDS, True)
            yield emu, bus
        finally:
            bus.close()
