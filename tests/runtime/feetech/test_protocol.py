"""Protocol-0 framing against Feetech's documented examples, and the sign-magnitude registers
against feetech-servo-sdk's own conversion."""

import pytest
import scservo_sdk as sdk
from hypothesis import given
from hypothesis import strategies as st

from embodied_mm.runtime.feetech.control_table import (
    GOAL_POSITION,
    GOAL_VELOCITY,
    HOMING_OFFSET,
    PRESENT_VELOCITY,
)
from embodied_mm.runtime.feetech.protocol import (
    INST_PING,
    INST_READ,
    PacketParser,
    build_packet,
    build_status,
    describe_error,
)


def test_ping_and_read_packets_match_the_protocol_examples():
    # ping servo 1; read 2 bytes at 0x38 (Present_Position) of servo 1
    assert build_packet(1, INST_PING) == bytes.fromhex("FFFF010201FB")
    assert build_packet(1, INST_READ, bytes([0x38, 0x02])) == bytes.fromhex("FFFF0104023802BE")


def test_parser_handles_split_noise_and_bad_checksum():
    good = build_status(3, 0, b"\x01\x02")
    bad = bytearray(build_status(4, 0, b"\x03"))
    bad[-1] ^= 0xFF
    stream = b"\x00\xff" + good + bytes(bad) + b"\xff" + build_status(5, 0x20)
    parser = PacketParser()
    packets = []
    for i in range(0, len(stream), 3):  # arrives in 3-byte pieces
        packets += parser.feed(stream[i : i + 3])
    assert [(p.motor_id, p.crc_ok) for p in packets] == [(3, True), (4, False), (5, True)]
    assert packets[0].params == b"\x01\x02" and packets[2].instruction == 0x20


@given(st.integers(-2047, 2047))
def test_homing_offset_sign_magnitude_agrees_with_the_sdk(value):
    raw = HOMING_OFFSET.encode(value)
    assert raw == sdk.SCS_TOSCS(value, 11) and raw < 1 << 12
    assert HOMING_OFFSET.decode(raw) == value == sdk.SCS_TOHOST(raw, 11)


@given(st.integers(-32767, 32767))
def test_velocity_sign_magnitude_round_trip(value):
    for reg in (GOAL_VELOCITY, PRESENT_VELOCITY):
        raw = reg.encode(value)
        assert raw == sdk.SCS_TOSCS(value, 15) and reg.decode(raw) == value


def test_out_of_range_values_are_refused():
    with pytest.raises(ValueError, match=r"Homing_Offset takes -2047..2047, got 2048"):
        HOMING_OFFSET.encode(2048)
    with pytest.raises(ValueError, match=r"Goal_Position takes 0..65535, got -1"):
        GOAL_POSITION.encode(-1)


def test_error_bits_are_named():
    assert describe_error(0x20) == "overload"
    assert describe_error(0x05) == "input voltage, overheating"
    assert describe_error(0x40) == "unknown bits 0x40"
