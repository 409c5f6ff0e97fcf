"""A Feetech STS bus (protocol 0) through Feetech's feetech-servo-sdk (``scservo_sdk``).

Registers are read and written by :class:`~embodied_mm.runtime.feetech.control_table.Register`,
with sign-magnitude encoding where the register has it. A SYNC READ is answered by one status
packet per servo, so a servo that does not answer is named in the error. Transient faults (a
bad checksum, a missing answer) are retried ``retries`` times, then raised as
:class:`BusError`; a status packet with error bits set raises :class:`HardwareError` with the
decoded cause (overload, overheating, ...): the servo has cut its torque and the arm must not
be driven blind.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence

import scservo_sdk as sdk

from embodied_mm.runtime.feetech.control_table import (
    GOAL_POSITION,
    LOCK,
    PRESENT_POSITION,
    TORQUE_ENABLE,
    Register,
)
from embodied_mm.runtime.feetech.protocol import describe_error
from embodied_mm.runtime.servo_bus import BusError, HardwareError, SdkServoBus, TimeoutMargin

__all__ = ["BusError", "FeetechBus", "HardwareError"]

log = logging.getLogger(__name__)

PKT_ID, PKT_ERROR, PKT_PARAMETER0 = 2, 4, 5  # offsets in a status packet


class _PortHandler(TimeoutMargin, sdk.PortHandler):
    """feetech-servo-sdk's port with a margin added to every status-packet timeout."""


class FeetechBus(SdkServoBus):
    def __init__(
        self,
        port: str,
        baudrate: int = 1_000_000,
        retries: int = 2,
        timeout_margin_ms: float | None = None,
        motor_names: dict[int, str] | None = None,
    ) -> None:
        """``motor_names``: joint names that errors give with the servo ids."""
        # protocol 0, little-endian words (STS/SMS series)
        packet = sdk.PacketHandler(0)
        super().__init__(port, _PortHandler, packet, baudrate, retries, timeout_margin_ms)
        self.motor_names = motor_names or {}

    # --- port ---------------------------------------------------------------------------------
    def _drain(self) -> None:
        """Drop bytes left from an earlier exchange (late or partial answers); the SDK's
        clearPort() only flushes the output side."""
        self.port.ser.reset_input_buffer()

    def _resync(self, quiet_s: float = 0.05, max_s: float = 0.5) -> None:
        """After an answer that belongs to another request: wait until the line has been quiet
        for ``quiet_s`` (at most ``max_s``), dropping what arrives, so that the answer still on
        its way is not read as the next request's."""
        deadline = time.monotonic() + max_s
        while True:
            self._drain()
            time.sleep(quiet_s)
            if not self.port.ser.in_waiting or time.monotonic() > deadline:
                break
        self._drain()

    # --- naming and status --------------------------------------------------------------------
    def motor(self, motor_id: int) -> str:
        """``motor 3 (elbow_flex)``, for messages."""
        name = self.motor_names.get(motor_id)
        return f"motor {motor_id}" + (f" ({name})" if name else "")

    def _motors(self, ids: Iterable[int]) -> str:
        return ", ".join(self.motor(i) for i in ids)

    def _check_errors(self, errors: dict[int, int]) -> None:
        faulted = {i: bits for i, bits in errors.items() if bits}
        if faulted:
            raise HardwareError(
                "hardware error on "
                + "; ".join(f"{self.motor(i)}: {describe_error(b)}" for i, b in faulted.items())
            )

    def _retrying(self, attempt: int, what: str, why: str) -> None:
        if attempt < self.retries:
            self.retried += 1
            log.debug("%s: retry %d on %s: %s", what, attempt + 1, self.port_name, why)

    # --- single servo -------------------------------------------------------------------------
    def ping(self, motor_id: int) -> int:
        """The servo's model number (777 for an STS3215)."""
        last = ""
        for attempt in range(self.retries + 1):
            self._drain()
            try:
                model, result, error = self.packet.ping(self.port, motor_id)
            except IndexError:  # the SDK reads the model number from a status packet too
                # short for it (e.g. a second copy of the ping's own answer): a bad read
                last = "status packet too short for the model number"
                self._retrying(attempt, "ping", last)
                self._resync()
                continue
            if result == sdk.COMM_SUCCESS:
                self._check_errors({motor_id: error})
                return int(model)
            last = self.packet.getTxRxResult(result)
            self._retrying(attempt, "ping", last)
        raise BusError(f"{self.motor(motor_id)} does not answer ping on {self.port_name}: {last}")

    def read(self, motor_id: int, reg: Register) -> int:
        last = ""
        for attempt in range(self.retries + 1):
            self._drain()
            data, result, error = self.packet.readTxRx(self.port, motor_id, reg.address, reg.size)
            if result == sdk.COMM_SUCCESS and len(data) < reg.size:  # an answer to another
                last = f"status packet holds {len(data)} of {reg.size} bytes"  # request
                self._retrying(attempt, f"read {reg.name}", last)
                self._resync()
                continue
            if result == sdk.COMM_SUCCESS:
                self._check_errors({motor_id: error})
                return reg.decode(int.from_bytes(bytes(data[: reg.size]), "little"))
            last = self.packet.getTxRxResult(result)
            self._retrying(attempt, f"read {reg.name}", last)
        raise BusError(f"read of {reg.name} from {self.motor(motor_id)} failed: {last}")

    def write(self, motor_id: int, reg: Register, value: int) -> None:
        """Write one register and wait for the servo's status packet."""
        data = list(reg.encode(value).to_bytes(reg.size, "little"))
        last = ""
        for attempt in range(self.retries + 1):
            self._drain()
            result, error = self.packet.writeTxRx(self.port, motor_id, reg.address, reg.size, data)
            if result == sdk.COMM_SUCCESS:
                self._check_errors({motor_id: error})
                return
            last = self.packet.getTxRxResult(result)
            self._retrying(attempt, f"write {reg.name}", last)
        raise BusError(f"write of {reg.name} = {value} to {self.motor(motor_id)} failed: {last}")

    def write_eeprom(self, motor_id: int, values: dict[Register, int]) -> None:
        """Write EEPROM registers (limits, homing offset): torque off, unlock, write, lock.
        The servo goes limp: only for calibration or an arm that is not powered."""
        self.write(motor_id, TORQUE_ENABLE, 0)
        self.write(motor_id, LOCK, 0)
        try:
            for reg, value in values.items():
                self.write(motor_id, reg, value)
        finally:
            self.write(motor_id, LOCK, 1)

    # --- all servos at once -------------------------------------------------------------------
    def sync_read(self, reg: Register, ids: Sequence[int]) -> dict[int, int]:
        """``reg`` of every servo in ``ids``, in one SYNC READ (one status packet each)."""
        ids = list(ids)
        last = ""
        for attempt in range(self.retries + 1):
            self._drain()
            result = self.packet.syncReadTx(self.port, reg.address, reg.size, ids, len(ids))
            if result != sdk.COMM_SUCCESS:
                last = self.packet.getTxRxResult(result)
                self._retrying(attempt, f"sync read {reg.name}", last)
                continue
            values: dict[int, int] = {}
            errors: dict[int, int] = {}
            corrupt: set[int] = set()
            while len(values) < len(ids):
                # the SDK's status-packet reader; the deadline was set by syncReadTx
                rx, result = self.packet.rxPacket(self.port)
                if result == sdk.COMM_RX_TIMEOUT:
                    break
                if result != sdk.COMM_SUCCESS:
                    if rx and len(rx) > PKT_ID:
                        corrupt.add(rx[PKT_ID])
                    continue
                i = rx[PKT_ID]
                if i in ids:
                    raw = bytes(rx[PKT_PARAMETER0 : PKT_PARAMETER0 + reg.size])
                    values[i] = reg.decode(int.from_bytes(raw, "little"))
                    errors[i] = rx[PKT_ERROR]
            if len(values) == len(ids):
                self._check_errors(errors)
                return values
            missing = [i for i in ids if i not in values]
            bad = [i for i in missing if i in corrupt]
            silent = [i for i in missing if i not in corrupt]
            last = "; ".join(
                part
                for part in (
                    f"{self._motors(silent)} did not answer" if silent else "",
                    f"the answer of {self._motors(bad)} failed its checksum" if bad else "",
                )
                if part
            )
            self._retrying(attempt, f"sync read {reg.name}", last)
        raise BusError(f"sync read of {reg.name} from {ids} on {self.port_name} failed: {last}")

    def sync_write(self, reg: Register, values: dict[int, int]) -> None:
        """``reg`` of each servo, in one SYNC WRITE (no answer on the bus)."""
        group = sdk.GroupSyncWrite(self.port, self.packet, reg.address, reg.size)
        for i, value in values.items():
            group.addParam(i, list(reg.encode(value).to_bytes(reg.size, "little")))
        result = group.txPacket()
        if result != sdk.COMM_SUCCESS:
            raise BusError(
                f"sync write of {reg.name} on {self.port_name} failed: "
                + self.packet.getTxRxResult(result)
            )

    def sync_read_positions(self, ids: Sequence[int]) -> dict[int, int]:
        """Present_Position (0..4095, after the homing offset) of each servo."""
        return self.sync_read(PRESENT_POSITION, ids)

    def sync_write_goals(self, goals: dict[int, int]) -> None:
        """Goal_Position (0..4095) per servo."""
        self.sync_write(GOAL_POSITION, goals)

    def set_torque(self, ids: Sequence[int], enabled: bool) -> None:
        """Torque on or off, servo by servo (each write is acknowledged)."""
        for i in ids:
            self.write(i, TORQUE_ENABLE, int(enabled))
