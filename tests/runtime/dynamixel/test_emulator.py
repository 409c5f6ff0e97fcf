"""The emulator's physical faults, seen through the real bus: a silent motor, an obstacle."""

import pytest

from embodied_mm.runtime.dynamixel.bus import BusError
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
