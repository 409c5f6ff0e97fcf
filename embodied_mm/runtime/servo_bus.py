"""What the servo buses (Dynamixel, Feetech) share: their errors, the status-packet timeout
margin added to the vendor SDKs' port handlers, and opening and closing the port."""

from __future__ import annotations

import os
from typing import Any


class BusError(RuntimeError):
    """Communication with the motors failed (after retries)."""


class HardwareError(RuntimeError):
    """A motor reports a hardware error; it has disabled its torque."""


# A pseudo-terminal is an emulated bus (ours, or a user's virtual device), answered by a thread
# or process of this machine, not by servo firmware within microseconds. The SDKs time their
# ~34 ms status wait in wall time and check it before the answering thread has run again, so a
# stall of the host process (a garbage collection, a loaded CI machine) is read as a silent
# servo. On a pty each wait gets this much more; real adapters keep the SDK's timing.
PTY_TIMEOUT_MARGIN_MS = 1000.0


def is_pseudo_terminal(port: str) -> bool:
    """Whether ``port`` names a pseudo-terminal (``/dev/pts/N``, also through a symlink)."""
    return os.path.realpath(port).startswith("/dev/pts/")


class TimeoutMargin:
    """Mixed into a vendor SDK's ``PortHandler``: ``margin_ms`` more on every status-packet
    timeout. Both SDKs wait ``2 x 16 ms`` (a USB adapter's default latency timer) plus the
    bytes' wire time; adapters with a slow latency timer, or a busy host, need more."""

    packet_timeout: float

    def __init__(self, port: str, margin_ms: float) -> None:
        super().__init__(port)  # type: ignore[call-arg]
        self.margin_ms = margin_ms

    def setPacketTimeout(self, packet_length):  # the SDKs' method names
        super().setPacketTimeout(packet_length)  # type: ignore[misc]
        self.packet_timeout += self.margin_ms

    def setPacketTimeoutMillis(self, msec):
        super().setPacketTimeoutMillis(msec + self.margin_ms)  # type: ignore[misc]


class SdkServoBus:
    """A serial port opened through a vendor SDK's ``PortHandler`` (with :class:`TimeoutMargin`
    mixed in) and the SDK's packet handler for the bus's protocol."""

    # Extra milliseconds on each status-packet timeout (see TimeoutMargin); None: 0 on a real
    # adapter, PTY_TIMEOUT_MARGIN_MS on a pseudo-terminal.
    timeout_margin_ms: float | None = None

    def __init__(
        self,
        port: str,
        port_handler: type,
        packet: Any,
        baudrate: int,
        retries: int,
        timeout_margin_ms: float | None,
    ) -> None:
        self.port_name = port
        self.baudrate = baudrate
        self.retries = retries
        margin = self.timeout_margin_ms if timeout_margin_ms is None else timeout_margin_ms
        if margin is None:
            margin = PTY_TIMEOUT_MARGIN_MS if is_pseudo_terminal(port) else 0.0
        self.port = port_handler(port, margin)
        self.packet = packet
        self.is_open = False
        self.retried = 0  # transient faults that a retry fixed

    def open(self) -> None:
        try:
            opened = self.port.openPort()
        except Exception as e:  # pyserial raises SerialException (an OSError) for a bad path
            raise BusError(f"cannot open {self.port_name}: {e}") from e
        if not opened or not self.port.setBaudRate(self.baudrate):
            raise BusError(f"cannot open {self.port_name} at {self.baudrate} baud")
        self.is_open = True

    def close(self) -> None:
        if self.is_open:
            self.port.closePort()
            self.is_open = False
