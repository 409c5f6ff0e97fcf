"""Dynamixel Protocol 2.0 framing: CRC-16, byte stuffing, packet building and parsing.

Written from the ROBOTIS e-Manual (Protocol 2.0), independently of dynamixel-sdk, so the motor
emulator that tests the SDK-based adapter does not share the code under test.

Packet: ``FF FF FD 00 | ID | LEN_L LEN_H | INST | [ERR] PARAMS... | CRC_L CRC_H``, where LEN
counts INST through CRC, and the CRC (polynomial 0x8005, init 0, not reflected) covers the
header through the last parameter. Byte stuffing: ``FF FF FD`` inside INST..PARAMS gets an
extra ``FD`` so the body never contains a header.
"""

from __future__ import annotations

from dataclasses import dataclass

HEADER = b"\xff\xff\xfd\x00"
BROADCAST_ID = 0xFE

INST_PING = 0x01
INST_READ = 0x02
INST_WRITE = 0x03
INST_REBOOT = 0x08
INST_STATUS = 0x55
INST_SYNC_READ = 0x82
INST_SYNC_WRITE = 0x83

# Status packet error byte: bit 7 is the hardware-error alert, bits 0..6 the result code.
ERR_ALERT = 0x80
ERR_RESULT_NAMES = {
    1: "result fail",
    2: "instruction error",
    3: "CRC error",
    4: "data range error",
    5: "data length error",
    6: "data limit error",
    7: "access error",
}

# Hardware Error Status register bits (X-series, address 70).
HW_ERROR_BITS = {
    0: "input voltage",
    2: "overheating",
    3: "motor encoder",
    4: "electrical shock",
    5: "overload",
}


def _crc_table() -> list[int]:
    table = []
    for i in range(256):
        crc = i << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x8005) if crc & 0x8000 else (crc << 1)
        table.append(crc & 0xFFFF)
    return table


_TABLE = _crc_table()


def crc16(data: bytes) -> int:
    crc = 0
    for b in data:
        crc = ((crc << 8) ^ _TABLE[((crc >> 8) ^ b) & 0xFF]) & 0xFFFF
    return crc


def stuff(body: bytes) -> bytes:
    """Insert FD after every FF FF FD in the instruction..parameters section."""
    out = bytearray()
    for b in body:
        out.append(b)
        if len(out) >= 3 and out[-3:] == b"\xff\xff\xfd":
            out.append(0xFD)
    return bytes(out)


def unstuff(body: bytes) -> bytes:
    out = bytearray()
    i = 0
    while i < len(body):
        out.append(body[i])
        if (
            len(out) >= 3
            and out[-3:] == b"\xff\xff\xfd"
            and i + 1 < len(body)
            and body[i + 1] == 0xFD
        ):
            i += 1  # drop the stuffing byte
        i += 1
    return bytes(out)


def build_packet(motor_id: int, instruction: int, params: bytes = b"") -> bytes:
    body = stuff(bytes([instruction]) + params)
    length = len(body) + 2
    head = HEADER + bytes([motor_id, length & 0xFF, length >> 8])
    crc = crc16(head + body)
    return head + body + bytes([crc & 0xFF, crc >> 8])


def build_status(motor_id: int, error: int = 0, params: bytes = b"") -> bytes:
    return build_packet(motor_id, INST_STATUS, bytes([error]) + params)


@dataclass
class Packet:
    motor_id: int
    instruction: int
    params: bytes  # unstuffed; for a status packet the first byte is the error byte
    crc_ok: bool


class PacketParser:
    """Incremental parser: feed bytes, get complete packets (bad-CRC ones flagged, not dropped)."""

    MAX_LEN = 1024  # a length field beyond this is noise; resynchronise on the next header

    def __init__(self) -> None:
        self.buf = bytearray()

    def feed(self, data: bytes) -> list[Packet]:
        self.buf.extend(data)
        packets = []
        while True:
            start = self.buf.find(HEADER)
            if start < 0:
                del self.buf[: max(0, len(self.buf) - 3)]  # keep a possible partial header
                return packets
            del self.buf[:start]
            if len(self.buf) < 7:
                return packets
            length = self.buf[5] | (self.buf[6] << 8)
            if length < 3 or length > self.MAX_LEN:
                del self.buf[:1]
                continue
            total = 7 + length
            if len(self.buf) < total:
                return packets
            raw = bytes(self.buf[:total])
            del self.buf[:total]
            crc_ok = crc16(raw[:-2]) == (raw[-2] | (raw[-1] << 8))
            body = unstuff(raw[7:-2])
            packets.append(Packet(raw[4], body[0], body[1:], crc_ok))


def describe_hw_error(bits: int) -> str:
    names = [name for bit, name in HW_ERROR_BITS.items() if bits & (1 << bit)]
    return ", ".join(names) or f"unknown bits 0x{bits:02x}"
