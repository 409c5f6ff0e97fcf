"""The machinery shared by the servo-bus emulators (Dynamixel, Feetech): a pseudo-terminal, the
thread that answers on it, fault injection and the motion of emulated servos.

A subclass supplies the protocol: :meth:`SerialBusEmulator._parser` (an incremental packet
parser) and :meth:`SerialBusEmulator._handle` (the answers to one instruction packet). The host
under test opens :attr:`SerialBusEmulator.port` (the pty's slave path) with the vendor SDK as if
it were a USB adapter; the emulator reads and answers on the master side.

Faults for the next N answers: ``"timeout"`` (no answer) and the subclass's
:attr:`~SerialBusEmulator.corrupt_fault` (the answer's last byte, its CRC or checksum, flipped).
A servo can go silent for good (:meth:`~SerialBusEmulator.silence`) and an obstacle can stop a
servo short of its goal (:meth:`~SerialBusEmulator.block`).
"""

from __future__ import annotations

import abc
import contextlib
import logging
import os
import select
import threading
import tty
from collections.abc import Iterable
from typing import Generic, Protocol, TypeVar

log = logging.getLogger(__name__)


class EmulatedServo(Protocol):
    """What the motion model needs from an emulated servo (ticks in its register frame)."""

    motor_id: int

    @property
    def torque(self) -> bool: ...

    @property
    def faulted(self) -> bool: ...

    @property
    def present(self) -> int: ...

    @property
    def goal(self) -> int: ...

    def set_present(self, ticks: int) -> None: ...

    def move_by_hand(self, ticks: int) -> None: ...

    def read(self, addr: int, length: int) -> bytes: ...

    def write(self, addr: int, data: bytes) -> None: ...


class ParsedPacket(Protocol):
    motor_id: int
    instruction: int
    params: bytes
    crc_ok: bool


class PacketFeed(Protocol):
    def feed(self, data: bytes) -> Iterable[ParsedPacket]: ...


S = TypeVar("S", bound=EmulatedServo)


class SerialBusEmulator(abc.ABC, Generic[S]):
    #: the fault name that corrupts an answer's integrity byte ("crc", "checksum")
    corrupt_fault: str = "crc"
    thread_name: str = "bus-emulator"

    def __init__(self, motors: dict[int, S], max_step_ticks: int | None = None) -> None:
        self.motors = motors
        self.max_step_ticks = max_step_ticks
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)  # no echo, no line discipline: bytes pass untouched
        os.set_blocking(self._master, False)
        self.port = os.ttyname(self._slave)
        self._faults: dict[str, int] = {}
        self._silent: set[int] = set()  # servos that no longer see the bus
        # servo id -> (ticks it cannot move past, whether it is above them)
        self._obstacles: dict[int, tuple[int, bool]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._host_stalled = False  # the last answer could not be written: nobody reads
        # close() writes a byte here to wake the serving thread out of select()
        self._wake_r, self._wake_w = os.pipe()
        self._fds_open = (self._master, self._slave, self._wake_r, self._wake_w)
        self._thread = threading.Thread(target=self._serve, name=self.thread_name, daemon=True)
        self.bad_packets_seen = 0  # instruction packets from the host that failed their check
        # what ended the serving thread early (a bug in the emulator): the host would only see
        # every servo go silent, so close() raises it
        self.error: Exception | None = None
        self.instructions: list[int] = []  # instruction codes received, in order

    # --- protocol (subclasses) ---------------------------------------------------------------
    @abc.abstractmethod
    def _parser(self) -> PacketFeed:
        """A fresh incremental parser of instruction packets."""

    @abc.abstractmethod
    def _status(self, motor: S, params: bytes = b"") -> bytes:
        """A status packet from ``motor`` carrying ``params``."""

    @abc.abstractmethod
    def _handle(self, motor_id: int, inst: int, params: bytes) -> list[bytes]:
        """The status packets answering one valid instruction packet (called under the lock)."""

    # --- control ----------------------------------------------------------------------------
    def start(self):
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
            raise RuntimeError("the bus emulator's thread did not stop; its pty is left open")
        fds, self._fds_open = self._fds_open, ()  # twice would close another file's numbers
        for fd in fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        if self.error is not None:
            error, self.error = self.error, None
            raise RuntimeError(f"the bus emulator on {self.port} stopped answering") from error

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def inject(self, kind: str, count: int = 1) -> None:
        """Fault the next ``count`` answers: :attr:`corrupt_fault`, "timeout" (no answer) or
        "duplicate" (the answer twice, as an adapter that echoes can deliver it)."""
        known = (self.corrupt_fault, "timeout", "duplicate")
        if kind not in known:
            raise ValueError(f"unknown fault {kind!r}; known: {', '.join(known)}")
        with self._lock:
            self._faults[kind] = self._faults.get(kind, 0) + count

    def silence(self, motor_id: int) -> None:
        """The servo drops off the bus: no answers, and writes no longer reach its control
        table (its torque and goal registers keep the values they had)."""
        with self._lock:
            self._silent.add(motor_id)

    def block(self, motor_id: int, ticks: int | None) -> None:
        """An obstacle at ``ticks``, on the side of the servo's goal: moving towards the goal,
        the servo stops there (its goal register keeps the commanded target). The servo stays
        on the side of ``ticks`` it is on now. None removes the obstacle."""
        with self._lock:
            if ticks is None:
                self._obstacles.pop(motor_id, None)
            else:
                above = self.motors[motor_id].present >= ticks
                self._obstacles[motor_id] = (int(ticks), above)

    def set_positions(self, ticks: dict[int, int]) -> None:
        """Move servos by hand (as a person does during calibration)."""
        with self._lock:
            for i, t in ticks.items():
                self.motors[i].move_by_hand(t)

    # --- bus ---------------------------------------------------------------------------------
    def _serve(self) -> None:
        try:
            self._answer_until_stopped()
        except Exception as error:  # kept for close(): a dead thread looks like silent servos
            log.exception("bus emulator on %s: the serving thread failed", self.port)
            self.error = error

    def _answer_until_stopped(self) -> None:
        parser = self._parser()
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
                        self.bad_packets_seen += 1
                        continue  # a real servo ignores a corrupted instruction
                    if pkt.motor_id in self._silent:
                        continue
                    for reply in self._handle(pkt.motor_id, pkt.instruction, pkt.params):
                        self._send(reply)

    def run_until_interrupted(self) -> None:
        """Print the port and answer on it until Ctrl-C (for trying the CLI by hand)."""
        import time

        with self:
            print(self.port, flush=True)
            with contextlib.suppress(KeyboardInterrupt):
                while True:
                    time.sleep(1)

    def _sync_read(self, addr: int, length: int, ids: Iterable[int]) -> list[bytes]:
        """A SYNC READ: one status packet per servo that still sees the bus, in request order,
        each servo first taking a motion step."""
        replies = []
        for i in self._listening(ids):
            self._advance(self.motors[i])
            replies.append(self._status(self.motors[i], self.motors[i].read(addr, length)))
        return replies

    def _sync_write(self, addr: int, length: int, body: bytes) -> None:
        """A SYNC WRITE's ``(id, data[length])...`` body, to the servos that still see the bus
        (both protocols lay it out so)."""
        for k in range(0, len(body) - length, length + 1):
            if self._listening([body[k]]):
                self.motors[body[k]].write(addr, body[k + 1 : k + 1 + length])

    def _listening(self, ids: Iterable[int]) -> list[int]:
        """The ids among ``ids`` that exist on this bus and still see it."""
        return [i for i in ids if i in self.motors and i not in self._silent]

    def _take_fault(self, kind: str) -> bool:
        if self._faults.get(kind, 0) > 0:
            self._faults[kind] -= 1
            return True
        return False

    def _send(self, packet: bytes) -> None:
        if self._take_fault("timeout"):
            return
        if self._take_fault(self.corrupt_fault):
            packet = packet[:-1] + bytes([packet[-1] ^ 0xFF])
        if self._take_fault("duplicate"):
            packet = packet + packet
        # The master is non-blocking: when nobody drains the slave side (the host has closed
        # the port) a full pty buffer drops the rest of the answer after a short wait, as a
        # real adapter's would, instead of blocking this thread (and close()) forever. A
        # partial write is completed, so the host never sees a truncated packet by accident.
        # Once a wait ran out, answers are dropped at once until the host reads again.
        view = memoryview(packet)
        while view and not self._stop.is_set():
            try:
                view = view[os.write(self._master, view) :]
            except BlockingIOError:
                if self._host_stalled:
                    return
                _, writable, _ = select.select([], [self._master], [], 0.5)
                self._host_stalled = not writable
                if self._host_stalled:
                    return
        self._host_stalled = False

    def _advance(self, motor: S) -> None:
        """One motion step towards the goal (at most ``max_step_ticks``), stopped by an
        obstacle; a servo with torque off or in a hardware fault does not move."""
        if not motor.torque or motor.faulted:
            return
        delta = motor.goal - motor.present
        if self.max_step_ticks is not None:
            delta = max(-self.max_step_ticks, min(self.max_step_ticks, delta))
        target = motor.present + delta
        if motor.motor_id in self._obstacles:
            obstacle, above = self._obstacles[motor.motor_id]
            target = max(target, obstacle) if above else min(target, obstacle)
        motor.set_present(target)
