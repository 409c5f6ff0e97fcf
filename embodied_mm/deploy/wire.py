"""msgpack with numpy arrays, without pickle: the byte format of openpi's websocket protocol.

An array travels as a map ``{b"__ndarray__": True, b"data": <raw bytes>, b"dtype": "<f4",
b"shape": [..]}`` and a numpy scalar as ``{b"__npgeneric__": True, b"data": <value>,
b"dtype": ...}``, which is what ``openpi_client.msgpack_numpy`` writes and reads, so an openpi
client can talk to our server and ours to an openpi server.

Decoding is the attack surface of the policy server, so :func:`unpackb` is strict: only plain
numeric/bool dtypes (no object, void or structured dtypes, which is where pickle and arbitrary
memory layouts hide), the byte count must match ``dtype.itemsize * prod(shape)`` exactly, and
the work a message can cause is bounded by :class:`DecodeLimits`: msgpack's own per-container
and per-string limits (checked on each header, before anything is allocated) and a count of
all maps and arrays in the message (checked as each one is built, so decoding stops at the
first container over the count). The count also bounds the nesting depth, since every level
is a container. Without it a 15 MB message of empty containers decodes into 15 M Python
objects (seconds of CPU and a gigabyte of memory); with it, decoding stops after
``max_containers`` of them.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import msgpack
import numpy as np

# dtype kinds an array on the wire may have: bool, signed/unsigned int, float.
_ALLOWED_KINDS = frozenset("biuf")
MAX_NDIM = 8


class WireError(ValueError):
    """A message that is not valid msgpack-numpy; the text says what is wrong."""


@dataclass(frozen=True)
class DecodeLimits:
    """Upper bounds on what one message may contain; anything over one is a :class:`WireError`.

    ``None`` for a length limit means "the message size": every element takes at least one
    byte, so a limit no larger than that still stops a 5-byte header from announcing a 4-GiB
    string before its bytes are checked.
    """

    max_containers: int = 100_000  # maps + arrays in the whole message (bounds depth too)
    # msgpack pre-allocates up to 10k slots per announced container before reading them, and
    # nests up to 1024 deep: these keep that under 32 MiB however the headers lie
    max_map_len: int | None = 4096  # entries in one map
    max_array_len: int | None = 4096  # elements in one array
    max_str_len: int | None = None  # bytes of one UTF-8 string
    max_bin_len: int | None = None  # bytes of one binary blob (array data)


# A generic message (server metadata, replies): bounded by its size and a container count that
# no reply of ours comes near.
DEFAULT_LIMITS = DecodeLimits()


def _pack_default(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind not in _ALLOWED_KINDS:
            raise WireError(f"cannot send an array of dtype {obj.dtype} (numeric or bool only)")
        # A byte view of the (contiguous) array: msgpack copies it once into its buffer, where
        # tobytes() would copy it twice.
        data = np.ascontiguousarray(obj).reshape(-1).view(np.uint8).data
        return {b"__ndarray__": True, b"data": data, b"dtype": obj.dtype.str, b"shape": obj.shape}
    if isinstance(obj, np.generic):
        if obj.dtype.kind not in _ALLOWED_KINDS:
            raise WireError(f"cannot send a scalar of dtype {obj.dtype}")
        return {b"__npgeneric__": True, b"data": obj.item(), b"dtype": obj.dtype.str}
    raise WireError(f"cannot encode an object of type {type(obj).__name__}")


def packb(obj: Any) -> bytes:
    """Encode dicts/lists/str/numbers/bytes and numpy arrays/scalars."""
    return msgpack.packb(obj, default=_pack_default, use_bin_type=True)


# Parsing a dtype string costs microseconds per array; the allowed ones are few, so cache them.
_DTYPE_CACHE: dict[str | bytes, np.dtype] = {}


def _checked_dtype(raw: Any) -> np.dtype:
    cached = _DTYPE_CACHE.get(raw) if isinstance(raw, (str, bytes)) else None
    if cached is not None:
        return cached
    if not isinstance(raw, (str, bytes)):
        raise WireError(f"array dtype must be a string, got {type(raw).__name__}")
    text = raw.decode("ascii", "replace") if isinstance(raw, bytes) else raw
    try:
        dtype = np.dtype(text)
    except (TypeError, ValueError) as e:
        raise WireError(f"unknown array dtype {text!r}") from e
    if dtype.kind not in _ALLOWED_KINDS or dtype.fields is not None or dtype.subdtype is not None:
        raise WireError(f"array dtype {text!r} is not allowed (numeric or bool only)")
    if len(_DTYPE_CACHE) < 256:  # only allowed dtypes get here, and there are few spellings
        _DTYPE_CACHE[raw] = dtype
    return dtype


def _decode_array(obj: dict) -> np.ndarray:
    dtype = _checked_dtype(obj.get(b"dtype"))
    shape = obj.get(b"shape")
    data = obj.get(b"data")
    if not isinstance(shape, (list, tuple)) or len(shape) > MAX_NDIM:
        raise WireError(f"array shape must be a list of at most {MAX_NDIM} ints, got {shape!r}")
    for n in shape:
        if type(n) is not int or n < 0:  # bool is an int subclass: excluded by the exact check
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


def _decode_scalar(obj: dict) -> np.generic:
    dtype = _checked_dtype(obj.get(b"dtype"))
    value = obj.get(b"data")
    if not isinstance(value, (bool, int, float)):
        raise WireError("numpy scalar data must be a number")
    try:
        return dtype.type(value)
    except (OverflowError, ValueError) as e:
        raise WireError(f"numpy scalar {value!r} does not fit {dtype}") from e


class _ContainerBudget:
    """The msgpack hooks: numpy decoding, and a running count of the maps and arrays built."""

    __slots__ = ("left", "limit")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.left = limit

    def _spend(self) -> None:
        self.left -= 1
        if self.left < 0:
            raise WireError(f"message holds more than {self.limit} maps and arrays (nested or not)")

    def on_map(self, obj: dict) -> Any:
        self._spend()
        if b"__ndarray__" in obj:
            return _decode_array(obj)
        if b"__npgeneric__" in obj:
            return _decode_scalar(obj)
        return obj

    def on_list(self, obj: list) -> list:
        self._spend()
        return obj


# msgpack's text for a max_*_len violation, e.g. "5000 exceeds max_str_len(4160)"
_OVER_LIMIT = re.compile(r"(\d+) exceeds max_(str|bin|array|map|ext)_len\((\d+)\)")
_LIMIT_WORDS = {
    "str": ("a string", "bytes"),
    "bin": ("a binary blob", "bytes"),
    "array": ("an array", "elements"),
    "map": ("a map", "entries"),
    "ext": ("an ext value", "bytes"),
}


def _at_most(n: int, limit: int | None) -> int:
    return n if limit is None else min(n, limit)


def unpackb(
    data: bytes, max_bytes: int = 64 * 1024 * 1024, limits: DecodeLimits = DEFAULT_LIMITS
) -> Any:
    """Decode one message; raises :class:`WireError` for anything malformed, oversized or over
    ``limits``."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise WireError(f"expected a binary message, got {type(data).__name__}")
    if len(data) > max_bytes:
        raise WireError(f"message of {len(data)} bytes exceeds the limit of {max_bytes}")
    n = len(data)
    budget = _ContainerBudget(limits.max_containers)
    try:
        return msgpack.unpackb(
            data,
            object_hook=budget.on_map,
            list_hook=budget.on_list,
            raw=False,
            strict_map_key=False,  # openpi's array maps use bytes keys
            max_str_len=_at_most(n, limits.max_str_len),
            max_bin_len=_at_most(n, limits.max_bin_len),
            max_array_len=_at_most(n, limits.max_array_len),
            max_map_len=_at_most(n, limits.max_map_len),
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
        over = _OVER_LIMIT.fullmatch(str(e))
        if over is not None:  # one of the max_*_len limits: say it in words
            n_found, kind, limit = over.groups()
            what, unit = _LIMIT_WORDS[kind]
            raise WireError(
                f"message holds {what} of {n_found} {unit}; the limit is {limit}"
            ) from e
        raise WireError(f"malformed msgpack message: {type(e).__name__}: {e}") from e
