"""msgpack-numpy encoding: round trips, openpi byte compatibility, and strict decoding."""

import tracemalloc

import msgpack
import numpy as np
import pytest

from embodied_mm.deploy.schema import ObsSchema
from embodied_mm.deploy.wire import DecodeLimits, WireError, packb, unpackb


@pytest.mark.parametrize(
    "dtype", ["uint8", "int16", "int64", "float16", "float32", "float64", "bool"]
)
def test_array_round_trip(dtype):
    a = (np.arange(24).reshape(2, 3, 4) % 7).astype(dtype)
    out = unpackb(packb({"x": a, "s": "hi", "n": 3}))
    assert out["x"].dtype == a.dtype and out["x"].shape == a.shape
    np.testing.assert_array_equal(out["x"], a)
    assert out["s"] == "hi" and out["n"] == 3


def test_numpy_scalar_and_noncontiguous_array():
    a = np.arange(12, dtype=np.float32).reshape(3, 4)[:, ::2]  # a strided view
    out = unpackb(packb({"a": a, "g": np.float32(1.5)}))
    np.testing.assert_array_equal(out["a"], a)
    assert out["g"] == np.float32(1.5) and isinstance(out["g"], np.float32)


def test_bytes_are_openpi_layout():
    """A plain msgpack reader sees exactly openpi's map: __ndarray__, data, dtype, shape."""
    a = np.ones((2, 2), dtype=np.float32)
    raw = msgpack.unpackb(packb(a), raw=False, strict_map_key=False)
    assert raw == {b"__ndarray__": True, b"data": a.tobytes(), b"dtype": "<f4", b"shape": [2, 2]}


def test_decodes_what_openpi_style_encoder_writes():
    # openpi packs the shape as a tuple (msgpack array) and the dtype with dtype.str
    a = np.arange(6, dtype=np.int32).reshape(2, 3)
    blob = msgpack.packb(
        {b"__ndarray__": True, b"data": a.tobytes(), b"dtype": a.dtype.str, b"shape": a.shape}
    )
    np.testing.assert_array_equal(unpackb(blob), a)


def _array_map(dtype: str, shape, data: bytes) -> bytes:
    return msgpack.packb({b"__ndarray__": True, b"data": data, b"dtype": dtype, b"shape": shape})


@pytest.mark.parametrize(
    ("blob", "match"),
    [
        (_array_map("|O", [1], b"\0" * 8), "not allowed"),  # object arrays = pickle territory
        (_array_map("V8", [1], b"\0" * 8), "not allowed"),
        (_array_map("[('a','<f4')]", [1], b"\0" * 4), "unknown array dtype|not allowed"),
        (_array_map("<f4", [1000, 1000], b"\0" * 4), "needs 4000000"),  # size lies
        (_array_map("<f4", [-1], b""), "non-negative"),
        (_array_map("<f4", [1] * 9, b"\0" * 4), "at most 8"),
        (_array_map("nonsense", [1], b"\0"), "unknown array dtype"),
        (b"\xc1", "malformed"),  # a reserved msgpack byte
        (b"\x92\x01", "malformed"),  # truncated array
        (packb(1) + packb(2), "malformed"),  # trailing data
    ],
)
def test_rejects_bad_messages(blob, match):
    with pytest.raises(WireError, match=match):
        unpackb(blob)


def test_rejects_oversized_message_before_parsing():
    with pytest.raises(WireError, match="exceeds the limit"):
        unpackb(b"\x00" * 101, max_bytes=100)


def test_rejects_unencodable_objects():
    with pytest.raises(WireError, match="dtype object"):
        packb(np.array([object()]))
    with pytest.raises(WireError, match="set"):
        packb({1, 2})


# --- bounded decoding: what one hostile message can cost -------------------------------------
REQUEST_LIMITS = ObsSchema(cameras=("front", "wrist"), state_dim=15).decode_limits(16 << 20)


def _nested(fanout: int, depth: int) -> bytes:
    """A full tree of arrays, ``fanout`` children each, empty arrays at the leaves."""
    node = b"\x90"
    for _ in range(depth):
        node = bytes([0x90 | fanout]) + node * fanout
    return node


def _decode_peak_bytes(blob: bytes, match: str) -> int:
    """Peak memory allocated while decoding ``blob``, which must fail with ``match``."""
    tracemalloc.start()
    try:
        with pytest.raises(WireError, match=match):
            unpackb(blob, 16 << 20, REQUEST_LIMITS)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize(
    ("blob", "match"),
    [
        # 15 MB of empty containers: one array announcing 15 M elements
        (
            b"\xdd" + (15_000_000).to_bytes(4, "big") + b"\x90" * 15_000_000,
            "an array of 15000000 elements; the limit is 16",
        ),
        # the same count hidden in a tree of arrays that each pass the per-array limit
        (_nested(15, 5), "more than 22 maps and arrays"),
        # depth: every level is a container
        (b"\x91" * 500 + b"\x90", "more than 22 maps and arrays"),
        # 1000 levels that each announce the most elements allowed (pre-allocation bait)
        (b"\xdc\x00\x10" * 1000, "malformed"),
        (msgpack.packb({str(i): i for i in range(100)}), "a map of 100 entries; the limit is"),
        (msgpack.packb("x" * 10_000), "a string of 10000 bytes; the limit is 4160"),
    ],
    ids=["empty-containers", "tree", "deep", "lying-headers", "wide-map", "long-string"],
)
def test_request_limits_stop_hostile_messages_early(blob, match):
    assert _decode_peak_bytes(blob, match) < 1 << 20  # nothing message-sized was ever built


def test_a_valid_request_fits_the_request_limits():
    request = {
        "observation.images.front": np.zeros((128, 128, 3), np.uint8),
        "observation.images.wrist": np.zeros((128, 128, 3), np.uint8),
        "observation.state": np.zeros(15, np.float32),
        "task": "é" * 1024,  # the longest task, in 2-byte characters
        "reset": True,
    }
    out = unpackb(packb(request), 16 << 20, REQUEST_LIMITS)
    assert out["task"] == request["task"] and out["observation.state"].shape == (15,)


def test_container_count_is_per_message_not_global():
    limits = DecodeLimits(max_containers=3)
    for _ in range(5):  # each message gets its own budget
        assert unpackb(msgpack.packb([[1], [2]]), limits=limits) == [[1], [2]]
    with pytest.raises(WireError, match="more than 3 maps and arrays"):
        unpackb(msgpack.packb([[1], [2], [3]]), limits=limits)
