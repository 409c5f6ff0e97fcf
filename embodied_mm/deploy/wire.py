"""msgpack with numpy arrays, without pickle: the byte format of openpi's websocket protocol.

An array travels as a map ``{b"__ndarray__": True, b"data": <raw bytes>, b"dtype": "<f4",
b"shape": [..]}`` and a numpy scalar as ``{b"__npgeneric__": True, b"data": <value>,
b"dtype": ...}``, which is what ``openpi_client.msgpack_numpy`` writes and reads, so an openpi
client can talk to our server and ours to an openpi server.

Decoding is the attack surface of the policy server, so :func:`unpackb` is strict: only plain
numeric/bool dtypes (no object, void or structured dtypes, which is where pickle and arbitrary
memory layouts hide), the byte count must match ``dtype.itemsize * prod(shape)`` exactly, and
msgpack's own container/string limits are bounded by the message size so a tiny message cannot
claim a huge allocation.
"""

from __future__ import annotations

import math
from typing import Any

import msgpack
import numpy as np

# dtype kinds an array on the wire may have: bool, signed/unsigned int, float.
_ALLOWED_KINDS = frozenset("biuf")
MAX_NDIM = 8


class WireError(ValueError):
    """A message that is not valid msgpack-numpy; the text says what is wrong."""


def _pack_default(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind not in _ALLOWED_KINDS:
            raise WireError(f"cannot send an array of dtype {obj.dtype} (numeric or bool only)")
        return {
            b"__ndarray__": True,
            b"data": np.ascontiguousarray(obj).tobytes(),
            b"dtype": obj.dtype.str,
            b"shape": list(obj.shape),
        }
    if isinstance(obj, np.generic):
        if obj.dtype.kind not in _ALLOWED_KINDS:
            raise WireError(f"cannot send a scalar of dtype {obj.dtype}")
        return {b"__npgeneric__": True, b"data": obj.item(), b"dtype": obj.dtype.str}
    raise WireError(f"cannot encode an object of type {type(obj).__name__}")


def packb(obj: Any) -> bytes:
    """Encode dicts/lists/str/numbers/bytes and numpy arrays/scalars."""
    return msgpack.packb(obj, default=_pack_default, use_bin_type=True)


def _checked_dtype(raw: Any) -> np.dtype:
    if not isinstance(raw, (str, bytes)):
        raise WireError(f"array dtype must be a string, got {type(raw).__name__}")
    text = raw.decode("ascii", "replace") if isinstance(raw, bytes) else raw
    try:
        dtype = np.dtype(text)
    except (TypeError, ValueError) as e:
        raise WireError(f"unknown array dtype {text!r}") from e
    if dtype.kind not in _ALLOWED_KINDS or dtype.fields is not None or dtype.subdtype is not None:
        raise WireError(f"array dtype {text!r} is not allowed (numeric or bool only)")
    return dtype


def _decode_array(obj: dict) -> np.ndarray:
    dtype = _checked_dtype(obj.get(b"dtype"))
    shape = obj.get(b"shape")
    data = obj.get(b"data")
    if not isinstance(shape, (list, tuple)) or len(shape) > MAX_NDIM:
        raise WireError(f"array shape must be a list of at most {MAX_NDIM} ints, got {shape!r}")
    if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape):
        raise WireError(f"array shape must hold non-negative ints, got {shape!r}")
    if not isinstance(data, bytes):
        raise WireError("array data must be bytes")
    expected = dtype.itemsize * math.prod(shape)
    if len(data) != expected:
        raise WireError(
            f"array data has {len(data)} bytes, but shape {list(shape)} of {dtype} needs {expected}"
        )
    # frombuffer does not copy; the message bytes stay alive as the array's base.
    return np.frombuffer(data, dtype=dtype).reshape(shape)


def _object_hook(obj: dict) -> Any:
    if b"__ndarray__" in obj:
        return _decode_array(obj)
    if b"__npgeneric__" in obj:
        dtype = _checked_dtype(obj.get(b"dtype"))
        value = obj.get(b"data")
        if not isinstance(value, (bool, int, float)):
            raise WireError("numpy scalar data must be a number")
        try:
            return dtype.type(value)
        except (OverflowError, ValueError) as e:
            raise WireError(f"numpy scalar {value!r} does not fit {dtype}") from e
    return obj


def unpackb(data: bytes, max_bytes: int = 64 * 1024 * 1024) -> Any:
    """Decode one message; raises :class:`WireError` for anything malformed or oversized."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise WireError(f"expected a binary message, got {type(data).__name__}")
    if len(data) > max_bytes:
        raise WireError(f"message of {len(data)} bytes exceeds the limit of {max_bytes}")
    n = len(data)
    try:
        return msgpack.unpackb(
            bytes(data),
            object_hook=_object_hook,
            raw=False,
            strict_map_key=False,  # openpi's array maps use bytes keys
            # Every element takes at least one byte, so none of these can exceed n; the limits
            # stop a 5-byte header from announcing a 4-GiB array before the data is checked.
            max_str_len=n,
            max_bin_len=n,
            max_array_len=n,
            max_map_len=n,
            max_ext_len=0,  # no ext types: nothing on the wire needs them
        )
    except WireError:
        raise
    except (
        msgpack.ExtraData,
        msgpack.FormatError,
        msgpack.StackError,
        ValueError,
        TypeError,
        UnicodeDecodeError,
        RecursionError,
    ) as e:
        raise WireError(f"malformed msgpack message: {type(e).__name__}: {e}") from e
