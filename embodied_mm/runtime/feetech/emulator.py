"""A byte-level emulator of a bus of Feetech STS3215 servos on a pseudo-terminal.

The bus under test opens :attr:`FeetechBusEmulator.port` with feetech-servo-sdk as if it were
the arm's USB adapter; the emulator answers protocol-0 packets (PING, READ, WRITE, SYNC READ
with one status packet per servo, SYNC WRITE) from each servo's control table in memory. A
servo with torque on moves to its goal (instantly, or by at most ``max_step_ticks`` per
answered read), within its Min/Max_Position_Limit, when in position mode (Operating_Mode 0).

The firmware's frames are modelled: each servo has a physical encoder reading (0..4095, what
:meth:`~FeetechBusEmulator.set_positions` moves, as a person turning the joint by hand does)
and reports ``Present_Position = (encoder - Homing_Offset) mod 4096``; goals are in that same
frame. EEPROM registers (below address 40) take writes only while ``Lock`` is 0; the real
firmware takes them when locked too but forgets them at power-off, so a driver that forgets to
unlock fails here instead of after the next power cycle. Servos start locked.

Faults: ``"checksum"`` (an answer with a wrong checksum) and ``"timeout"`` (no answer) for the
next N answers, :meth:`~FeetechBusEmulator.silence` (a servo drops off the bus),
:meth:`~FeetechBusEmulator.block` (an obstacle), :meth:`~FeetechBusEmulator.set_hardware_error`
(error bits in every status packet; the servo stops driving). Runnable by hand:
``python -m embodied_mm.runtime.feetech.emulator`` prints the port of an emulated SO-101.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from embodied_mm.runtime.feetech.control_table import (
    CENTER_TICKS,
    EEPROM_END,
    GOAL_POSITION,
    HOMING_OFFSET,
    ID,
    LOCK,
    MAX_POSITION_LIMIT,
    MIN_POSITION_LIMIT,
    MODEL_NUMBER,
    OPERATING_MODE,
    P_COEFFICIENT,
    POSITION_MODE,
    PRESENT_POSITION,
    STS3215_MODEL,
    TICKS_PER_REV,
    TORQUE_ENABLE,
    Register,
)
from embodied_mm.runtime.feetech.protocol import (
    BROADCAST_ID,
    INST_PING,
    INST_READ,
    INST_SYNC_READ,
    INST_SYNC_WRITE,
    INST_WRITE,
    PacketParser,
    build_status,
)
from embodied_mm.runtime.serial_emulator import SerialBusEmulator

READ_ONLY_FROM = PRESENT_POSITION.address  # the feedback registers from here on


@dataclass
class EmulatedServo:
    motor_id: int
    memory: bytearray = field(default_factory=lambda: bytearray(128))
    encoder: int = CENTER_TICKS  # the physical reading, before the homing offset
    error_bits: int = 0

    def __post_init__(self) -> None:
        self.put(MODEL_NUMBER, STS3215_MODEL)
        self.put(ID, self.motor_id)
        self.put(MAX_POSITION_LIMIT, TICKS_PER_REV - 1)
        self.put(P_COEFFICIENT, 32)
        self.put(GOAL_POSITION, CENTER_TICKS)
        self.put(LOCK, 1)

    def get(self, reg: Register) -> int:
        """A register's value (decoded), as the host would read it."""
        if reg == PRESENT_POSITION:
            return self.present
        raw = int.from_bytes(self.memory[reg.address : reg.address + reg.size], "little")
        return reg.decode(raw)

    def put(self, reg: Register, value: int) -> None:
        """Set a register directly (the emulator's side, no lock)."""
        raw = reg.encode(value)
        self.memory[reg.address : reg.address + reg.size] = raw.to_bytes(reg.size, "little")

    def read(self, addr: int, length: int) -> bytes:
        self.memory[PRESENT_POSITION.address : PRESENT_POSITION.address + 2] = (
            self.present.to_bytes(2, "little")
        )
        return bytes(self.memory[addr : addr + length])

    def write(self, addr: int, data: bytes) -> None:
        """A WRITE from the bus: read-only registers and, while locked, EEPROM are left alone."""
        locked = self.memory[LOCK.address] != 0
        for k, b in enumerate(data):
            a = addr + k
            if a >= READ_ONLY_FROM or a < ID.address or (a < EEPROM_END and locked):
                continue
            self.memory[a] = b

    @property
    def torque(self) -> bool:
        return self.memory[TORQUE_ENABLE.address] == 1

    @property
    def faulted(self) -> bool:
        """Error bits set, or not in position mode: either way it does not track its goal."""
        return self.error_bits != 0 or self.get(OPERATING_MODE) != POSITION_MODE

    @property
    def homing_offset(self) -> int:
        return self.get(HOMING_OFFSET)

    @property
    def present(self) -> int:
        return (self.encoder - self.homing_offset) % TICKS_PER_REV

    def set_present(self, ticks: int) -> None:
        self.encoder = (int(ticks) + self.homing_offset) % TICKS_PER_REV

    def move_by_hand(self, ticks: int) -> None:
        self.encoder = int(ticks) % TICKS_PER_REV

    @property
    def goal(self) -> int:
        """The goal the servo drives to: Goal_Position within the position limits."""
        lo, hi = self.get(MIN_POSITION_LIMIT), self.get(MAX_POSITION_LIMIT)
        return max(lo, min(hi, self.get(GOAL_POSITION)))


class FeetechBusEmulator(SerialBusEmulator[EmulatedServo]):
    corrupt_fault = "checksum"
    thread_name = "feetech-emulator"

    def __init__(self, motor_ids: list[int], max_step_ticks: int | None = None) -> None:
        super().__init__({i: EmulatedServo(i) for i in motor_ids}, max_step_ticks)

    def set_hardware_error(self, motor_id: int, bits: int) -> None:
        """Error bits (e.g. 0x20 overload) in every status packet of a servo; 0 clears them."""
        with self._lock:
            self.motors[motor_id].error_bits = bits

    def _parser(self) -> PacketParser:
        return PacketParser()

    def _status(self, servo: EmulatedServo, params: bytes = b"") -> bytes:
        return build_status(servo.motor_id, servo.error_bits, params)

    def _handle(self, motor_id: int, inst: int, params: bytes) -> list[bytes]:
        broadcast = motor_id == BROADCAST_ID
        targets = self._listening(list(self.motors) if broadcast else [motor_id])
        if not targets and inst not in (INST_SYNC_READ, INST_SYNC_WRITE):
            return []
        if inst == INST_PING:
            return [self._status(self.motors[t]) for t in targets]
        if inst == INST_READ and not broadcast and len(params) == 2:
            servo = self.motors[motor_id]
            self._advance(servo)
            return [self._status(servo, servo.read(params[0], params[1]))]
        if inst == INST_WRITE and len(params) >= 2:
            for t in targets:
                self.motors[t].write(params[0], params[1:])
            return [] if broadcast else [self._status(self.motors[motor_id])]
        if inst == INST_SYNC_READ and len(params) >= 2:
            return self._sync_read(params[0], params[1], params[2:])
        if inst == INST_SYNC_WRITE and len(params) >= 2:
            self._sync_write(params[0], params[1], params[2:])
        return []


def main() -> None:
    """Run an emulated 6-servo SO-101 arm and print its port, for trying the CLI by hand."""
    FeetechBusEmulator(list(range(1, 7)), max_step_ticks=40).run_until_interrupted()


if __name__ == "__main__":
    main()
