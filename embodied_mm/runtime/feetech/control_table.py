"""The STS3215's control table (Feetech STS/SMS series, protocol 0), as far as the driver uses it.

Addresses and sizes from Feetech's STS/SMS memory table (the same ones LeRobot's Feetech driver
uses). Multi-byte registers are little-endian. A few registers are sign-magnitude: the sign is
one bit (bit 11 for the homing offset, bit 15 for velocities) and the rest is the magnitude.
Positions are 12-bit, 0..4095 over one turn; the firmware reports
``Present_Position = (encoder - Homing_Offset) mod 4096``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Register:
    name: str
    address: int
    size: int  # bytes, 1 or 2
    sign_bit: int | None = None  # sign-magnitude registers: the bit that holds the sign
    eeprom: bool = False  # written only with torque off and Lock = 0

    def encode(self, value: int) -> int:
        """The unsigned register value of ``value`` (sign-magnitude where the register is)."""
        value = int(value)
        if self.sign_bit is None:
            limit = 1 << (8 * self.size)
            if not 0 <= value < limit:
                raise ValueError(f"{self.name} takes 0..{limit - 1}, got {value}")
            return value
        magnitude = abs(value)
        if magnitude >= 1 << self.sign_bit:
            raise ValueError(
                f"{self.name} takes -{(1 << self.sign_bit) - 1}..{(1 << self.sign_bit) - 1}, "
                f"got {value}"
            )
        return magnitude | (1 << self.sign_bit) if value < 0 else magnitude

    def decode(self, raw: int) -> int:
        """The value of the unsigned register contents ``raw``."""
        if self.sign_bit is None:
            return int(raw)
        magnitude = raw & ((1 << self.sign_bit) - 1)
        return -magnitude if raw & (1 << self.sign_bit) else magnitude


MODEL_NUMBER = Register("Model_Number", 3, 2, eeprom=True)
ID = Register("ID", 5, 1, eeprom=True)
MIN_POSITION_LIMIT = Register("Min_Position_Limit", 9, 2, eeprom=True)
MAX_POSITION_LIMIT = Register("Max_Position_Limit", 11, 2, eeprom=True)
P_COEFFICIENT = Register("P_Coefficient", 21, 1, eeprom=True)
HOMING_OFFSET = Register("Homing_Offset", 31, 2, sign_bit=11, eeprom=True)
OPERATING_MODE = Register("Operating_Mode", 33, 1, eeprom=True)  # 0: position control
TORQUE_ENABLE = Register("Torque_Enable", 40, 1)
ACCELERATION = Register("Acceleration", 41, 1)
GOAL_POSITION = Register("Goal_Position", 42, 2)
GOAL_VELOCITY = Register("Goal_Velocity", 46, 2, sign_bit=15)
LOCK = Register("Lock", 55, 1)
PRESENT_POSITION = Register("Present_Position", 56, 2)
PRESENT_VELOCITY = Register("Present_Velocity", 58, 2, sign_bit=15)

REGISTERS = (
    MODEL_NUMBER,
    ID,
    MIN_POSITION_LIMIT,
    MAX_POSITION_LIMIT,
    P_COEFFICIENT,
    HOMING_OFFSET,
    OPERATING_MODE,
    TORQUE_ENABLE,
    ACCELERATION,
    GOAL_POSITION,
    GOAL_VELOCITY,
    LOCK,
    PRESENT_POSITION,
    PRESENT_VELOCITY,
)
EEPROM_END = 40  # addresses below this are EEPROM

POSITION_MODE = 0
STS3215_MODEL = 777
TICKS_PER_REV = 4096
CENTER_TICKS = 2048
