"""A Dynamixel Protocol 2.0 bus through ROBOTIS's dynamixel-sdk: sync read, sync write, torque.

Transient bus faults (a status packet with a bad CRC, a missing answer) are retried
``retries`` times, then raised as :class:`BusError`. A motor whose status packet carries the
hardware-alert bit raises :class:`HardwareError` with the decoded Hardware Error Status
(overload, overheating, ...), because a motor in that state has cut its torque and the arm
must not be driven blind.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import dynamixel_sdk as sdk

from embodied_mm.runtime.dynamixel.control_table import (
    ADDR_GOAL_POSITION,
    ADDR_HW_ERROR,
    ADDR_PRESENT_POSITION,
    ADDR_TORQUE_ENABLE,
    LEN_POSITION,
)
from embodied_mm.runtime.dynamixel.protocol import ERR_ALERT, describe_hw_error
from embodied_mm.runtime.servo_bus import BusError, HardwareError, SdkServoBus, TimeoutMargin

__all__ = ["BusError", "DynamixelBus", "HardwareError"]

log = logging.getLogger(__name__)


class _PortHandler(TimeoutMargin, sdk.PortHandler):
    """dynamixel-sdk's port with a margin added to every status-packet timeout."""


class DynamixelBus(SdkServoBus):
    def __init__(
        self,
        port: str,
        baudrate: int = 1_000_000,
        retries: int = 2,
        timeout_margin_ms: float | None = None,
    ) -> None:
        super().__init__(
            port, _PortHandler, sdk.PacketHandler(2.0), baudrate, retries, timeout_margin_ms
        )

    def _comm_text(self, result: int) -> str:
        return self.packet.getTxRxResult(result)

    def ping(self, motor_id: int) -> int:
        """The motor's model number."""
        for attempt in range(self.retries + 1):
            model, result, error = self.packet.ping(self.port, motor_id)
            if result == sdk.COMM_SUCCESS:
                self._check_alert([motor_id], {motor_id: error})
                return int(model)
            last = self._comm_text(result)
            if attempt < self.retries:
                self.retried += 1
        raise BusError(f"motor {motor_id} on {self.port_name} does not answer ping: {last}")

    def _check_alert(self, ids: Sequence[int], errors: dict[int, int]) -> None:
        alerted = [i for i in ids if errors.get(i, 0) & ERR_ALERT]
        if not alerted:
            return
        details = []
        for i in alerted:
            bits, result, _ = self.packet.read1ByteTxRx(self.port, i, ADDR_HW_ERROR)
            details.append(
                f"motor {i}: {describe_hw_error(bits) if result == sdk.COMM_SUCCESS else 'status unreadable'}"
            )
        raise HardwareError("hardware error on " + "; ".join(details))

    def sync_read_positions(self, ids: Sequence[int]) -> dict[int, int]:
        """Present position (ticks, signed) of each motor, in one SYNC READ."""
        last = ""
        for attempt in range(self.retries + 1):
            result = self.packet.syncReadTx(
                self.port, ADDR_PRESENT_POSITION, LEN_POSITION, list(ids), len(ids), False
            )
            if result == sdk.COMM_SUCCESS:
                # Read each status packet ourselves (as GroupSyncRead does) to keep the error byte.
                values: dict[int, int] = {}
                errors: dict[int, int] = {}
                for i in ids:
                    data, result, error = self.packet.readRx(self.port, i, LEN_POSITION)
                    if result != sdk.COMM_SUCCESS:
                        break
                    values[i] = int.from_bytes(bytes(data[:LEN_POSITION]), "little", signed=True)
                    errors[i] = error
                if len(values) == len(ids):
                    self._check_alert(ids, errors)
                    return values
            last = self._comm_text(result)
            # drain whatever partial answers remain before retrying
            self.port.clearPort()
            if attempt < self.retries:
                self.retried += 1
                log.debug("sync read retry %d on %s: %s", attempt + 1, self.port_name, last)
        raise BusError(f"sync read of {list(ids)} on {self.port_name} failed: {last}")

    def sync_write_goals(self, goals: dict[int, int]) -> None:
        """Goal position (ticks) per motor, in one SYNC WRITE (no answer on the bus)."""
        group = sdk.GroupSyncWrite(self.port, self.packet, ADDR_GOAL_POSITION, LEN_POSITION)
        for i, ticks in goals.items():
            group.addParam(i, list(int(ticks).to_bytes(4, "little", signed=True)))
        result = group.txPacket()
        if result != sdk.COMM_SUCCESS:
            raise BusError(f"sync write on {self.port_name} failed: {self._comm_text(result)}")

    def set_torque(self, ids: Sequence[int], enabled: bool) -> None:
        for i in ids:
            last = ""
            for attempt in range(self.retries + 1):
                result, error = self.packet.write1ByteTxRx(
                    self.port, i, ADDR_TORQUE_ENABLE, int(enabled)
                )
                if result == sdk.COMM_SUCCESS:
                    self._check_alert([i], {i: error})
                    break
                last = self._comm_text(result)
                if attempt < self.retries:
                    self.retried += 1
            else:
                raise BusError(f"torque {'on' if enabled else 'off'} for motor {i} failed: {last}")
