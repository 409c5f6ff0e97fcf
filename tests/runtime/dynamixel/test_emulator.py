"""The emulator's physical faults, seen through the real bus: a silent motor, an obstacle."""

import os
import time

import pytest

from embodied_mm.runtime.dynamixel.bus import BusError
from embodied_mm.runtime.dynamixel.emulator import MotorBusEmulator
from embodied_mm.runtime.dynamixel.protocol import INST_PING, build_packet
from tests.runtime.dynamixel.conftest import IDS, open_rig


@pytest.fixture
def rig():
    with open_rig(retries=1, torque=True) as r:
        yield r


def test_a_silenced_motor_neither_answers_nor_takes_commands(rig):
    emu, bus = rig
    emu.silence(2)
    with pytest.raises(BusError, match="motor 2"):
        bus.ping(2)
    with pytest.raises(BusError, match="sync read"):
        bus.sync_read_positions(IDS)
    bus.sync_write_goals({1: 1000, 2: 1000, 3: 1000})
    bus.set_torque([1], False)
    assert emu.motors[2].goal == 2048 and emu.motors[2].torque  # frozen as it was
    assert emu.motors[3].goal == 1000 and not emu.motors[1].torque  # the others still listen
    assert bus.sync_read_positions([1, 3])[3] == 1000


@pytest.mark.parametrize(("start", "obstacle", "goal"), [(2048, 2200, 2500), (2048, 1900, 1500)])
def test_an_obstacle_stops_the_motor_short_of_its_goal(rig, start, obstacle, goal):
    emu, bus = rig
    emu.block(1, obstacle)
    bus.sync_write_goals({1: goal})
    for _ in range(3):  # the motor stays pressed against the obstacle, read after read
        assert bus.sync_read_positions([1]) == {1: obstacle}
    assert emu.motors[1].goal == goal
    bus.sync_write_goals({1: start})  # backing off is free
    assert bus.sync_read_positions([1]) == {1: start}
    emu.block(1, None)
    bus.sync_write_goals({1: goal})
    assert bus.sync_read_positions([1]) == {1: goal}


def test_close_ends_the_thread_even_when_nobody_reads_the_answers():
    """A host that writes but never reads fills the pty; the emulator drops answers instead of
    blocking, so close() stops its thread before the pty's descriptors are freed for reuse."""
    emu = MotorBusEmulator(IDS).start()
    host = os.open(emu.port, os.O_RDWR | os.O_NOCTTY)
    try:
        pings = 3000  # ~42 kB of answers: more than a pty holds
        os.write(host, build_packet(1, INST_PING) * pings)
        deadline = time.monotonic() + 30
        while len(emu.instructions) < pings and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(emu.instructions) == pings  # every packet handled, none blocked the thread
        emu.close()
        assert not emu._thread.is_alive()
    finally:
        os.close(host)


def test_a_second_close_leaves_other_descriptors_alone():
    emu = MotorBusEmulator(IDS).start()
    emu.close()
    other = os.open(os.devnull, os.O_RDONLY)  # likely one of the numbers just freed
    try:
        emu.close()
        os.fstat(other)  # still open
    finally:
        os.close(other)
