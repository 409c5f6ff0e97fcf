"""Fuzzing the message decoder: no crash (only WireError), no hang, bounded memory."""

import contextlib
import tracemalloc

import msgpack
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from embodied_mm.deploy.schema import ObsSchema, SchemaError
from embodied_mm.deploy.wire import WireError, packb, unpackb

SCHEMA = ObsSchema(
    cameras=("front", "wrist"), state_dim=15, state_low=(-3.0,) * 15, state_high=(3.0,) * 15
)
VALID = packb(
    {
        "observation.images.front": np.zeros((16, 16, 3), np.uint8),
        "observation.images.wrist": np.zeros((16, 16, 3), np.uint8),
        "observation.state": np.zeros(15, np.float32),
        "task": "pick up the red cube",
    }
)
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _peak_bytes(blob: bytes) -> int:
    tracemalloc.start()
    try:
        with contextlib.suppress(WireError, SchemaError):
            SCHEMA.validate(unpackb(blob, 1 << 20, SCHEMA.decode_limits(1 << 20)))
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def decode_and_validate(blob: bytes) -> None:
    """The server's whole input path; anything but these two errors is a bug."""
    bound = 8 * len(blob) + 256 * 1024
    # tracemalloc counts every thread's allocations (pytest-xdist's I/O thread too), so an
    # over-budget peak is measured again: an allocation the decoder makes is deterministic,
    # one from another thread is not.
    peak = min(_peak_bytes(blob) for _ in range(3)) if _peak_bytes(blob) > bound else 0
    # decoding may copy the message a few times, never allocate what a header merely claims
    assert peak <= bound, f"peak {peak} bytes for a {len(blob)}-byte message"


@pytest.mark.timeout(120)
@FUZZ
@given(st.binary(max_size=4096))
def test_random_bytes(blob):
    decode_and_validate(blob)


@pytest.mark.timeout(120)
@FUZZ
@given(st.lists(st.tuples(st.integers(0, len(VALID) - 1), st.integers(0, 255)), max_size=8))
def test_mutated_valid_message(edits):
    blob = bytearray(VALID)
    for pos, byte in edits:
        blob[pos] = byte
    decode_and_validate(bytes(blob))


@pytest.mark.timeout(120)
@FUZZ
@given(
    dtype=st.sampled_from(["<f4", "|u1", "|O", "<c8", "V4", ">i8", "|b1", "<M8[s]", "x"]),
    shape=st.lists(st.integers(-2, 1 << 40), max_size=10),
    data=st.binary(max_size=64),
)
def test_lying_array_headers(dtype, shape, data):
    blob = msgpack.packb({b"__ndarray__": True, b"data": data, b"dtype": dtype, b"shape": shape})
    decode_and_validate(blob)


@pytest.mark.timeout(120)
@FUZZ
@given(
    st.recursive(
        st.none()
        | st.booleans()
        | st.integers(-(2**63), 2**64 - 1)
        | st.floats()
        | st.text(max_size=20)
        | st.binary(max_size=20),
        lambda inner: (
            st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=30), inner, max_size=5)
        ),
        max_leaves=40,
    )
)
def test_arbitrary_msgpack_documents(doc):
    decode_and_validate(msgpack.packb(doc))


def test_deep_nesting_is_an_error_not_a_crash():
    blob = b"\x91" * 100_000 + b"\x00"  # 100k nested one-element arrays
    with pytest.raises(WireError):
        unpackb(blob)
