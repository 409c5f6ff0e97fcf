"""Feetech protocol 0 (the SCS/STS serial protocol) framing: packets, checksum, parsing.

Written from Feetech's protocol description, independently of feetech-servo-sdk, so the servo
emulator that tests the SDK-based bus does not share the code under test.

Instruction: ``FF FF | ID | LEN | INST | PARAMS... | CHK``; status: ``FF FF | ID | LEN | ERR |
PARAMS... | CHK``. LEN counts INST (or ERR) through CHK, so it is ``len(PARAMS) + 2``;
``CHK = ~(ID + LEN + INST + sum(PARAMS)) & 0xFF``. READ takes ``addr, length``; WRITE
``addr, data...``; SYNC READ ``addr, length, id...`` (each servo answers with its own status
packet); SYNC WRITE ``addr, length, (id, data...)...`` (no answer).
"""

from __future__ import annotations

from dataclasses import dataclass

HEADER = b"\xff\xff"
BROADCAST_ID = 0xFE

INST_PING = 0x01
INST_READ = 0x02
INST_WRITE = 0x03
INST_SYNC_READ = 0x82
INST_SYNC_WRITE = 0x83

# Status packet error byte (STS series): bit -> condition. Any of them cuts the servo's torque.
ERROR_BITS = {
    0: "input voltage",
    1: "angle sensor",
    2: "overheating",
    3: "overcurrent",
    5: "overload",
}


def checksum(body: bytes) -> int:
    """``body`` is ID through the last parameter."""
    return ~sum(body) & 0xFF


def build_packet(motor_id: int, instruction: int, params: bytes = b"") -> bytes:
    body = bytes([motor_id, len(params) + 2, instruction]) + params
    return HEADER + body + bytes([checksum(body)])


def build_status(motor_id: int, error: int = 0, params: bytes = b"") -> bytes:
    return build_packet(motor_id, error, params)


@dataclass
class Packet:
    motor_id: int
    instruction: int  # for a status packet: the error byte
    params: bytes
    crc_ok: bool  # the checksum matched (named as the Dynamixel parser's, for the emulator)


class PacketParser:
    """Incremental parser: feed bytes, get complete packets (bad-checksum ones flagged)."""

    def __init__(self) -> None:
        self.buf = bytearray()

    def feed(self, data: bytes) -> list[Packet]:
        self.buf.extend(data)
        packets = []
        while True:
            start = self.buf.find(HEADER)
            if start < 0:
                del self.buf[: max(0, len(self.buf) - 1)]  # keep a possible partial header
                return packets
            del self.buf[:start]
            if len(self.buf) >= 3 and self.buf[2] == 0xFF:  # FF FF FF ...: the header is later
                del self.buf[:1]
                continue
            if len(self.buf) < 4:
                return packets
            length = self.buf[3]
            if length < 2:
                del self.buf[:2]
                continue
            total = 4 + length
            if len(self.buf) < total:
                return packets
            raw = bytes(self.buf[:total])
            del self.buf[:total]
            packets.append(Packet(raw[2], raw[4], raw[5:-1], checksum(raw[2:-1]) == raw[-1]))


def describe_error(bits: int) -> str:
    names = [name for bit, name in ERROR_BITS.items() if bits & (1 << bit)]
    return ", ".join(names) or f"unknown bits 0x{bits:02x}"
