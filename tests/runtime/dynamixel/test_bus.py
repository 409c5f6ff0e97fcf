"""dynamixel-sdk against the motor emulator on a pseudo-terminal: real packets, real CRC."""

import pytest

from embodied_mm.runtime.dynamixel.bus import BusError, DynamixelBus, HardwareError
from embodied_mm.runtime.dynamixel.protocol import INST_SYNC_READ, INST_SYNC_WRITE
from tests.runtime.dynamixel.conftest import IDS, open_rig


@pytest.fixture
def rig():
    with open_rig(retries=2) as r:
        yield r


def test_ping_returns_model_number(rig):
    _, bus = rig
    assert bus.ping(2) == 1060


def test_sync_read_uses_one_instruction_for_all_motors(rig):
    emu, bus = rig
    emu.set_positions({1: 100, 2: -50, 3: 4000})
    assert bus.sync_read_positions(IDS) == {1: 100, 2: -50, 3: 4000}
    assert emu.instructions.count(INST_SYNC_READ) == 1


def test_sync_write_and_torque(rig):
    emu, bus = rig
    bus.set_torque(IDS, True)
    assert all(m.torque for m in emu.motors.values())
    bus.sync_write_goals({1: 1000, 2: 2000, 3: 3000})
    assert bus.sync_read_positions(IDS) == {1: 1000, 2: 2000, 3: 3000}  # torque on: it moved
    assert emu.instructions[-2:] == [INST_SYNC_WRITE, INST_SYNC_READ]  # one packet each
    bus.set_torque(IDS, False)
    bus.sync_write_goals({1: 0, 2: 0, 3: 0})
    assert bus.sync_read_positions(IDS) == {1: 1000, 2: 2000, 3: 3000}  # torque off: it did not


def test_crc_error_is_retried(rig):
    emu, bus = rig
    emu.set_positions({1: 11, 2: 22, 3: 33})
    emu.inject("crc", count=1)
    assert bus.sync_read_positions(IDS) == {1: 11, 2: 22, 3: 33}
    assert bus.retried == 1


def test_timeout_is_retried(rig):
    emu, bus = rig
    emu.inject("timeout", count=1)
    assert bus.ping(1) == 1060
    assert bus.retried == 1


def test_persistent_fault_raises_bus_error(rig):
    emu, bus = rig
    emu.inject("timeout", count=100)
    with pytest.raises(BusError, match=r"sync read of \[1, 2, 3\].*failed"):
        bus.sync_read_positions(IDS)


def test_hardware_error_is_raised_with_its_cause(rig):
    emu, bus = rig
    emu.set_hardware_error(2, 0x20)  # overload
    with pytest.raises(HardwareError, match="motor 2: overload"):
        bus.sync_read_positions(IDS)
    with pytest.raises(HardwareError, match="overload"):
        bus.set_torque([2], True)


def test_missing_port_is_a_clear_error():
    with pytest.raises(BusError, match="cannot open /dev/does-not-exist"):
        DynamixelBus("/dev/does-not-exist").open()
