"""feetech-servo-sdk against the STS3215 emulator on a pseudo-terminal: real packets, real
checksums; every register the driver uses, seen the same from both sides."""

import pytest

from embodied_mm.runtime.feetech import control_table as ct
from embodied_mm.runtime.feetech.bus import BusError, FeetechBus, HardwareError
from embodied_mm.runtime.feetech.protocol import INST_SYNC_READ, INST_SYNC_WRITE
from tests.runtime.feetech.conftest import IDS, open_rig


@pytest.fixture
def rig():
    with open_rig(retries=2) as r:
        yield r


WRITABLE = [
    (ct.MIN_POSITION_LIMIT, 300),
    (ct.MAX_POSITION_LIMIT, 3900),
    (ct.P_COEFFICIENT, 16),
    (ct.HOMING_OFFSET, -1234),
    (ct.HOMING_OFFSET, 777),
    (ct.OPERATING_MODE, 1),
    (ct.TORQUE_ENABLE, 1),
    (ct.ACCELERATION, 254),
    (ct.GOAL_POSITION, 4095),
    (ct.GOAL_VELOCITY, -1000),
    (ct.LOCK, 0),
]


@pytest.mark.parametrize(("reg", "value"), WRITABLE, ids=lambda x: getattr(x, "name", str(x)))
def test_a_register_written_by_the_bus_is_what_the_servo_holds(rig, reg, value):
    emu, bus = rig
    if reg.eeprom:
        bus.write(2, ct.LOCK, 0)
    bus.write(2, reg, value)
    assert emu.motors[2].get(reg) == value  # the servo's table, decoded independently
    assert bus.read(2, reg) == value
    assert bus.sync_read(reg, IDS)[2] == value
    assert emu.motors[1].get(reg) != value or reg == ct.LOCK  # only servo 2 was written


@pytest.mark.parametrize(
    ("reg", "value"),
    [(ct.MODEL_NUMBER, 777), (ct.ID, 2), (ct.PRESENT_VELOCITY, -321), (ct.PRESENT_VELOCITY, 45)],
    ids=lambda x: getattr(x, "name", str(x)),
)
def test_a_register_the_servo_reports_is_what_the_bus_reads(rig, reg, value):
    emu, bus = rig
    if reg != ct.MODEL_NUMBER and reg != ct.ID:
        emu.motors[2].put(reg, value)
    assert bus.read(2, reg) == value and bus.sync_read(reg, [2]) == {2: value}


def test_present_position_is_the_encoder_less_the_homing_offset(rig):
    emu, bus = rig
    emu.set_positions({1: 1000, 2: 100})  # encoder ticks, as turned by hand
    bus.write_eeprom(1, {ct.HOMING_OFFSET: -500})
    bus.write_eeprom(2, {ct.HOMING_OFFSET: 300})
    assert bus.sync_read_positions([1, 2]) == {1: 1500, 2: (100 - 300) % 4096}
    assert emu.motors[1].get(ct.LOCK) == 1  # locked again


def test_eeprom_writes_need_the_lock_open(rig):
    _emu, bus = rig
    bus.write(1, ct.HOMING_OFFSET, 100)  # servos start locked: the write is acknowledged ...
    assert bus.read(1, ct.HOMING_OFFSET) == 0  # ... but not kept
    bus.write_eeprom(1, {ct.HOMING_OFFSET: 100})
    assert bus.read(1, ct.HOMING_OFFSET) == 100


def test_ping_returns_the_sts3215_model_number(rig):
    _, bus = rig
    assert bus.ping(2) == ct.STS3215_MODEL


def test_sync_read_uses_one_instruction_for_all_servos(rig):
    emu, bus = rig
    emu.set_positions({1: 100, 2: 0, 3: 4095})
    assert bus.sync_read_positions(IDS) == {1: 100, 2: 0, 3: 4095}
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


def test_the_position_limits_bound_the_motion(rig):
    _emu, bus = rig
    bus.write_eeprom(1, {ct.MIN_POSITION_LIMIT: 1500, ct.MAX_POSITION_LIMIT: 2500})
    bus.set_torque([1], True)
    bus.sync_write_goals({1: 3500})
    assert bus.sync_read_positions([1]) == {1: 2500}
    bus.sync_write_goals({1: 100})
    assert bus.sync_read_positions([1]) == {1: 1500}


def test_bad_checksum_is_retried(rig):
    emu, bus = rig
    emu.set_positions({1: 11, 2: 22, 3: 33})
    emu.inject("checksum", count=1)
    assert bus.sync_read_positions(IDS) == {1: 11, 2: 22, 3: 33}
    assert bus.retried == 1


def test_timeout_is_retried(rig):
    emu, bus = rig
    emu.inject("timeout", count=1)
    assert bus.ping(1) == ct.STS3215_MODEL
    assert bus.retried == 1


def test_a_doubled_ping_answer_is_retried_not_a_crash(rig):
    """The SDK's ping reads the model number after the ping; a second copy of the ping's own
    answer (no data) is read as that answer: the SDK indexes past its end (IndexError)."""
    emu, bus = rig
    emu.inject("duplicate", count=1)
    assert bus.ping(1) == ct.STS3215_MODEL
    assert bus.retried == 1
    assert bus.read(1, ct.PRESENT_POSITION) == emu.motors[1].present  # the bus is in step


def test_a_persistent_checksum_fault_names_the_servo(rig):
    emu, bus = rig
    emu.inject("checksum", count=100)
    with pytest.raises(BusError, match=r"answer of motor 1 \(shoulder_pan\).*failed its checksum"):
        bus.sync_read_positions(IDS)


def test_a_silent_servo_is_named_and_the_others_still_answer(rig):
    emu, bus = rig
    emu.silence(2)
    with pytest.raises(BusError, match=r"motor 2 \(shoulder_lift\) does not answer ping"):
        bus.ping(2)
    with pytest.raises(
        BusError,
        match=r"sync read of Present_Position .*: motor 2 \(shoulder_lift\) did not answer$",
    ):
        bus.sync_read_positions(IDS)
    bus.set_torque([1, 3], True)
    bus.sync_write_goals({1: 1000, 2: 1000, 3: 1000})
    assert emu.motors[2].get(ct.GOAL_POSITION) == 2048  # frozen as it was
    assert bus.sync_read_positions([1, 3]) == {1: 1000, 3: 1000}


def test_hardware_error_is_raised_with_its_cause(rig):
    emu, bus = rig
    emu.set_hardware_error(2, 0x20)
    with pytest.raises(HardwareError, match=r"motor 2 \(shoulder_lift\): overload"):
        bus.sync_read_positions(IDS)
    with pytest.raises(HardwareError, match="overload"):
        bus.set_torque([2], True)
    emu.set_hardware_error(2, 0x04)
    with pytest.raises(HardwareError, match="overheating"):
        bus.ping(2)


def test_missing_port_is_a_clear_error():
    with pytest.raises(BusError, match="cannot open /dev/does-not-exist"):
        FeetechBus("/dev/does-not-exist").open()
