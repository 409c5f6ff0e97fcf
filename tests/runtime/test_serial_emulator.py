"""The pty machinery both servo emulators share: close() stops the serving thread before it
frees the pty, even when nobody reads the answers, and a second close() is harmless."""

import os
import time

import pytest

from embodied_mm.runtime.dynamixel import protocol as dxl
from embodied_mm.runtime.dynamixel.emulator import MotorBusEmulator
from embodied_mm.runtime.feetech import protocol as feetech
from embodied_mm.runtime.feetech.emulator import FeetechBusEmulator

EMULATORS = {
    "dynamixel": (MotorBusEmulator, dxl.build_packet(1, dxl.INST_PING)),
    "feetech": (FeetechBusEmulator, feetech.build_packet(1, feetech.INST_PING)),
}


@pytest.mark.parametrize("kind", EMULATORS)
def test_close_ends_the_thread_even_when_nobody_reads_the_answers(kind):
    """A host that writes but never reads fills the pty; the emulator drops answers instead of
    blocking, so close() stops its thread before the pty's descriptors are freed for reuse."""
    emulator, ping = EMULATORS[kind]
    emu = emulator([1, 2, 3]).start()
    host = os.open(emu.port, os.O_RDWR | os.O_NOCTTY)
    try:
        pings = 6000  # more answers than a pty holds
        os.write(host, ping * pings)
        deadline = time.monotonic() + 30
        while len(emu.instructions) < pings and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(emu.instructions) == pings  # every packet handled, none blocked the thread
        emu.close()
        assert not emu._thread.is_alive()
    finally:
        os.close(host)


@pytest.mark.parametrize("kind", EMULATORS)
def test_a_second_close_leaves_other_descriptors_alone(kind):
    emu = EMULATORS[kind][0]([1, 2, 3]).start()
    emu.close()
    other = os.open(os.devnull, os.O_RDONLY)  # likely one of the numbers just freed
    try:
        emu.close()
        os.fstat(other)  # still open
    finally:
        os.close(other)


@pytest.mark.parametrize("kind", EMULATORS)
def test_an_unknown_fault_is_refused(kind):
    emulator = EMULATORS[kind][0]
    with emulator([1]) as emu, pytest.raises(ValueError, match=r"known: .*timeout"):
        emu.inject("gremlins")


@pytest.mark.parametrize("kind", EMULATORS)
def test_a_serving_thread_that_died_is_reported_on_close(kind, monkeypatch):
    """A bug in an emulator's handler ends its thread; the host only sees silent servos, so
    close() names the cause instead of letting the test fail on a timeout."""
    emulator, ping = EMULATORS[kind]
    emu = emulator([1]).start()

    def broken(*args):
        raise KeyError("boom")

    monkeypatch.setattr(emu, "_handle", broken)
    host = os.open(emu.port, os.O_RDWR | os.O_NOCTTY)
    try:
        os.write(host, ping)
        emu._thread.join(timeout=10)
        with pytest.raises(RuntimeError, match="stopped answering") as raised:
            emu.close()
        assert isinstance(raised.value.__cause__, KeyError)
        emu.close()  # the cause is reported once
    finally:
        os.close(host)
