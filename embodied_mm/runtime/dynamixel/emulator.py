"""A protocol-level emulator of a bus of Dynamixel X-series motors on a pseudo-terminal.

The adapter under test opens :attr:`MotorBusEmulator.port` (the pty's slave path) with
dynamixel-sdk as if it were a U2D2 adapter; the emulator answers real Protocol 2.0 packets on
the master side: PING, READ, WRITE, SYNC READ (one status packet per motor, in request order),
SYNC WRITE, with each motor's control table in memory. A torque-enabled motor moves its present
position to the goal (instantly, or by at most ``max_step_ticks`` per answered read).

Faults can be injected for the next N packets: ``"crc"`` (a status packet with a wrong CRC),
``"timeout"`` (no answer), ``"hardware_error"`` (the alert bit in every status packet and the
Hardware Error Status register set, until cleared). A motor can also go silent for good
(:meth:`MotorBusEmulator.silence`: a cut cable or a brown-out; it neither answers nor takes
commands), and an obstacle can stop a motor short of its goal (:meth:`MotorBusEmulator.block`:
an object in a gripper's jaws). Useful for tests and for trying the CLI without an arm
(``python -m embodied_mm.runtime.dynamixel.emulator``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from embodied_mm.runtime.dynamixel.control_table import (
    ADDR_GOAL_POSITION,
    ADDR_HW_ERROR,
    ADDR_MODEL_NUMBER,
    ADDR_PRESENT_POSITION,
    ADDR_TORQUE_ENABLE,
)
from embodied_mm.runtime.dynamixel.protocol import (
    BROADCAST_ID,
    ERR_ALERT,
    INST_PING,
    INST_READ,
    INST_SYNC_READ,
    INST_SYNC_WRITE,
    INST_WRITE,
    PacketParser,
    build_status,
)
from embodied_mm.runtime.serial_emulator import SerialBusEmulator


@dataclass
class EmulatedMotor:
    motor_id: int
    model_number: int = 1060  # XL430-W250
    memory: bytearray = field(default_factory=lambda: bytearray(256))

    def __post_init__(self) -> None:
        self.write(ADDR_MODEL_NUMBER, self.model_number.to_bytes(2, "little"))
        self.set_present(2048)
        self.write(ADDR_GOAL_POSITION, (2048).to_bytes(4, "little"))

    def read(self, addr: int, length: int) -> bytes:
        return bytes(self.memory[addr : addr + length])

    def write(self, addr: int, data: bytes) -> None:
        self.memory[addr : addr + len(data)] = data

    @property
    def torque(self) -> bool:
        return bool(self.memory[ADDR_TORQUE_ENABLE])

    @property
    def faulted(self) -> bool:
        """A latched Hardware Error Status: the firmware has shut the torque off."""
        return bool(self.memory[ADDR_HW_ERROR])

    @property
    def present(self) -> int:
        return int.from_bytes(self.read(ADDR_PRESENT_POSITION, 4), "little", signed=True)

    def set_present(self, ticks: int) -> None:
        self.write(ADDR_PRESENT_POSITION, int(ticks).to_bytes(4, "little", signed=True))

    def move_by_hand(self, ticks: int) -> None:
        self.set_present(ticks)

    @property
    def goal(self) -> int:
        return int.from_bytes(self.read(ADDR_GOAL_POSITION, 4), "little", signed=True)


class MotorBusEmulator(SerialBusEmulator[EmulatedMotor]):
    corrupt_fault = "crc"
    thread_name = "dxl-emulator"

    def __init__(self, motor_ids: list[int], max_step_ticks: int | None = None) -> None:
        super().__init__({i: EmulatedMotor(i) for i in motor_ids}, max_step_ticks)

    @property
    def crc_errors_seen(self) -> int:
        """Instruction packets from the host with a bad CRC."""
        return self.bad_packets_seen

    def set_hardware_error(self, motor_id: int, bits: int) -> None:
        """Latch a Hardware Error Status (e.g. 0x20 overload) on a motor; 0 clears it."""
        with self._lock:
            self.motors[motor_id].memory[ADDR_HW_ERROR] = bits

    def _parser(self) -> PacketParser:
        return PacketParser()

    def _status(self, motor: EmulatedMotor, params: bytes = b"") -> bytes:
        error = ERR_ALERT if motor.faulted else 0
        return build_status(motor.motor_id, error, params)

    def _handle(self, motor_id: int, inst: int, params: bytes) -> list[bytes]:
        targets = self._listening(list(self.motors) if motor_id == BROADCAST_ID else [motor_id])
        if inst == INST_PING:
            return [
                self._status(self.motors[t], self.motors[t].read(ADDR_MODEL_NUMBER, 2) + b"\x2e")
                for t in targets
            ]
        if inst == INST_READ and motor_id != BROADCAST_ID and targets:
            addr, length = (
                int.from_bytes(params[0:2], "little"),
                int.from_bytes(params[2:4], "little"),
            )
            m = self.motors[motor_id]
            self._advance(m)
            return [self._status(m, m.read(addr, length))]
        if inst == INST_WRITE and targets:
            addr = int.from_bytes(params[0:2], "little")
            for t in targets:
                self.motors[t].write(addr, params[2:])
            return [] if motor_id == BROADCAST_ID else [self._status(self.motors[motor_id])]
        if inst == INST_SYNC_READ:
            addr, length = (
                int.from_bytes(params[0:2], "little"),
                int.from_bytes(params[2:4], "little"),
            )
            return self._sync_read(addr, length, params[4:])
        if inst == INST_SYNC_WRITE:
            addr, length = (
                int.from_bytes(params[0:2], "little"),
                int.from_bytes(params[2:4], "little"),
            )
            self._sync_write(addr, length, params[4:])
        return []


def main() -> None:
    """Run an emulated 6-motor Koch arm and print its port, for trying the CLI by hand."""
    MotorBusEmulator(list(range(1, 7)), max_step_ticks=40).run_until_interrupted()


if __name__ == "__main__":
    main()
