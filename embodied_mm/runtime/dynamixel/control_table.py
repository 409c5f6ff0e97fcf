"""Control-table addresses of the Dynamixel X series (XL330, XL430, XM430, XM540, XC430 ...).

All X-series models share these RAM/EEPROM addresses under Protocol 2.0; positions are 4-byte
signed ticks, 4096 per revolution, 2048 at the horn's centre.
"""

ADDR_MODEL_NUMBER = 0  # 2 bytes
ADDR_TORQUE_ENABLE = 64  # 1 byte
ADDR_HW_ERROR = 70  # 1 byte, Hardware Error Status
ADDR_GOAL_POSITION = 116  # 4 bytes
ADDR_PRESENT_POSITION = 132  # 4 bytes
LEN_POSITION = 4
TICKS_PER_REV = 4096
