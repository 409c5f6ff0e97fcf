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

import contextlib
import os
import select
import threading
import tty
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
    def present(self) -> int:
        return int.from_bytes(self.read(ADDR_PRESENT_POSITION, 4), "little", signed=True)

    def set_present(self, ticks: int) -> None:
        self.write(ADDR_PRESENT_POSITION, int(ticks).to_bytes(4, "little", signed=True))

    @property
    def goal(self) -> int:
        return int.from_bytes(self.read(ADDR_GOAL_POSITION, 4), "little", signed=True)


class MotorBusEmulator:
    def __init__(self, motor_ids: list[int], max_step_ticks: int | None = None) -> None:
        self.motors = {i: EmulatedMotor(i) for i in motor_ids}
        self.max_step_ticks = max_step_ticks
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)  # no echo, no line discipline: bytes pass untouched
        os.set_blocking(self._master, False)
        self.port = os.ttyname(self._slave)
        self._faults: dict[str, int] = {}
        self._silent: set[int] = set()  # motors that no longer see the bus
        # motor id -> (ticks it cannot move past, whether it is above them)
        self._obstacles: dict[int, tuple[int, bool]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        # close() writes a byte here to wake the serving thread out of select()
        self._wake_r, self._wake_w = os.pipe()
        self._fds_open = (self._master, self._slave, self._wake_r, self._wake_w)
        self._thread = threading.Thread(target=self._serve, name="dxl-emulator", daemon=True)
        self.crc_errors_seen = 0  # instruction packets from the host with a bad CRC
        self.instructions: list[int] = []  # instruction codes received, in order

    # --- control ----------------------------------------------------------------------------
    def start(self) -> MotorBusEmulator:
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop the serving thread, then close the pty. The descriptors are closed only once
        the thread has ended: a thread still polling a closed descriptor number would read
        the packets of whichever pty the process opens next under that number."""
        self._stop.set()
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        if self._thread.is_alive():
            raise RuntimeError("the motor emulator's thread did not stop; its pty is left open")
        fds, self._fds_open = self._fds_open, ()  # twice would close another file's numbers
        for fd in fds:
            with contextlib.suppress(OSError):
                os.close(fd)

    def __enter__(self) -> MotorBusEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def inject(self, kind: str, count: int = 1) -> None:
        """Fault the next ``count`` answers: "crc" or "timeout"."""
        if kind not in ("crc", "timeout"):
            raise ValueError(f"unknown fault {kind!r}; known: crc, timeout")
        with self._lock:
            self._faults[kind] = self._faults.get(kind, 0) + count

    def set_hardware_error(self, motor_id: int, bits: int) -> None:
        """Latch a Hardware Error Status (e.g. 0x20 overload) on a motor; 0 clears it."""
        with self._lock:
            self.motors[motor_id].memory[ADDR_HW_ERROR] = bits

    def silence(self, motor_id: int) -> None:
        """The motor drops off the bus: no answers, and writes no longer reach its control
        table (its torque and goal registers keep the values they had)."""
        with self._lock:
            self._silent.add(motor_id)

    def block(self, motor_id: int, ticks: int | None) -> None:
        """An obstacle at ``ticks``, on the side of the motor's goal: moving towards the goal,
        the motor stops there (its goal register keeps the commanded target). The motor stays
        on the side of ``ticks`` it is on now. None removes the obstacle."""
        with self._lock:
            if ticks is None:
                self._obstacles.pop(motor_id, None)
            else:
                above = self.motors[motor_id].present >= ticks
                self._obstacles[motor_id] = (int(ticks), above)

    def set_positions(self, ticks: dict[int, int]) -> None:
        """Move motors by hand (as a person does during calibration)."""
        with self._lock:
            for i, t in ticks.items():
                self.motors[i].set_present(t)

    # --- bus ---------------------------------------------------------------------------------
    def _serve(self) -> None:
        parser = PacketParser()
        while not self._stop.is_set():
            ready, _, _ = select.select([self._master, self._wake_r], [], [], 0.05)
            if self._master not in ready:
                continue
            try:
                data = os.read(self._master, 4096)
            except BlockingIOError:
                continue
            except OSError:
                return
            for pkt in parser.feed(data):
                with self._lock:
                    self.instructions.append(pkt.instruction)
                    if not pkt.crc_ok:
                        self.crc_errors_seen += 1
                        continue  # a real motor ignores a corrupted instruction
                    for reply in self._handle(pkt.motor_id, pkt.instruction, pkt.params):
                        self._send(reply)

    def _take_fault(self, kind: str) -> bool:
        if self._faults.get(kind, 0) > 0:
            self._faults[kind] -= 1
            return True
        return False

    def _send(self, packet: bytes) -> None:
        if self._take_fault("timeout"):
            return
        if self._take_fault("crc"):
            packet = packet[:-1] + bytes([packet[-1] ^ 0xFF])
        # The master is non-blocking: when nobody drains the slave side (the host has closed
        # the port) a full pty buffer drops the answer, as a real adapter's would, instead of
        # blocking this thread (and close()) forever.
        with contextlib.suppress(BlockingIOError):
            os.write(self._master, packet)

    def _status(self, motor: EmulatedMotor, params: bytes = b"") -> bytes:
        error = ERR_ALERT if motor.memory[ADDR_HW_ERROR] else 0
        return build_status(motor.motor_id, error, params)

    def _advance(self, motor: EmulatedMotor) -> None:
        if not motor.torque or motor.memory[ADDR_HW_ERROR]:
            return  # an alerted motor shuts its torque off, like the real firmware
        delta = motor.goal - motor.present
        if self.max_step_ticks is not None:
            delta = max(-self.max_step_ticks, min(self.max_step_ticks, delta))
        target = motor.present + delta
        if motor.motor_id in self._obstacles:
            obstacle, above = self._obstacles[motor.motor_id]
            target = max(target, obstacle) if above else min(target, obstacle)
        motor.set_present(target)

    def _handle(self, motor_id: int, inst: int, params: bytes) -> list[bytes]:
        if motor_id in self._silent:
            return []
        targets = list(self.motors) if motor_id == BROADCAST_ID else [motor_id]
        targets = [t for t in targets if t in self.motors and t not in self._silent]
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
            replies = []
            for i in params[4:]:
                if i in self.motors and i not in self._silent:
                    self._advance(self.motors[i])
                    replies.append(self._status(self.motors[i], self.motors[i].read(addr, length)))
            return replies
        if inst == INST_SYNC_WRITE:
            addr, length = (
                int.from_bytes(params[0:2], "little"),
                int.from_bytes(params[2:4], "little"),
            )
            body = params[4:]
            for k in range(0, len(body) - length, length + 1):
                i = body[k]
                if i in self.motors and i not in self._silent:
                    self.motors[i].write(addr, body[k + 1 : k + 1 + length])
            return []
        return []


def main() -> None:
    """Run an emulated 6-motor Koch arm and print its port, for trying the CLI by hand."""
    import time

    with MotorBusEmulator(list(range(1, 7)), max_step_ticks=40) as emu:
        print(emu.port, flush=True)
        while True:
            time.sleep(1)


if __name__ == "__main__":
    main()
