"""msgpack-numpy encoding: round trips, openpi byte compatibility, and strict decoding."""

import msgpack
import numpy as np
import pytest

from embodied_mm.deploy.wire import WireError, packb, unpackb


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
