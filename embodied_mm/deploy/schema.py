"""What an observation request to the policy server must look like, and its validation.

The server publishes the schema in its connect-time metadata (:meth:`ObsSchema.to_metadata`)
and checks every decoded request against it before anything reaches the model: the exact key
set, each array's dtype and shape, string lengths, and that the state is finite and inside the
policy's state range (:mod:`embodied_mm.deploy.state_range`). A failure raises
:class:`SchemaError` whose text names the offending key, which the server sends back as the
error reply. :meth:`ObsSchema.decode_limits` bounds the msgpack decoder to what such a request
can hold, so a message that could not pass validation is refused while it is being decoded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from embodied_mm.deploy.state_range import FLOAT32_MAX
from embodied_mm.deploy.wire import MAX_NDIM, DecodeLimits
from embodied_mm.features import OBS_STATE, TASK, image_key
from embodied_mm.runtime.inference import RTC_DELAY, RTC_PREFIX

# Optional request keys besides the observation: ``reset`` asks the server to reset the
# policy's internal state (e.g. a recurrent plan) before inferring; ``rtc.prefix`` (L, D)
# float and ``rtc.delay`` (an int) are real-time chunking's committed actions, accepted
# (together) when the policy continues a prefix (metadata ``rtc_max_delay`` > 0).
RESET = "reset"


class SchemaError(ValueError):
    """A request that does not match the server's observation schema."""


@dataclass(frozen=True)
class ObsSchema:
    """One unbatched observation: images (H, W, 3) uint8 per camera, state (S,), task text.

    ``state_low``/``state_high``: the accepted range of each state dimension (None: any value
    float32 can hold)."""

    cameras: tuple[str, ...]
    state_dim: int
    image_shape: tuple[int, int] | None = None  # (H, W); None: any size up to max_image_side
    max_image_side: int = 1024
    max_task_chars: int = 1024
    state_low: tuple[float, ...] | None = None
    state_high: tuple[float, ...] | None = None
    # real-time chunking: a committed prefix has at most chunk_size rows of action_dim and a
    # delay of at most rtc_max_delay; 0: the policy takes none (the keys are unknown)
    action_dim: int = 0
    chunk_size: int = 0
    rtc_max_delay: int = 0
    # derived in __post_init__: (S,) float64 bounds used by validate
    _low: np.ndarray = field(init=False, repr=False, compare=False)
    _high: np.ndarray = field(init=False, repr=False, compare=False)
    _keys: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if (self.state_low is None) != (self.state_high is None):
            raise ValueError("state_low and state_high go together")
        if self.state_low is None:
            low = np.full(self.state_dim, -FLOAT32_MAX)
            high = np.full(self.state_dim, FLOAT32_MAX)
        else:
            low = np.asarray(self.state_low, dtype=np.float64)
            high = np.asarray(self.state_high, dtype=np.float64)
            if low.shape != (self.state_dim,) or high.shape != (self.state_dim,):
                raise ValueError(f"state range must have {self.state_dim} values per bound")
            if not (low <= high).all():
                raise ValueError("state_low must not exceed state_high")
        object.__setattr__(self, "_low", low)
        object.__setattr__(self, "_high", high)
        object.__setattr__(self, "_keys", frozenset(self.required_keys))

    def to_metadata(self) -> dict[str, Any]:
        return {
            "cameras": list(self.cameras),
            "state_dim": self.state_dim,
            "image_shape": list(self.image_shape) if self.image_shape else None,
            "max_image_side": self.max_image_side,
            "max_task_chars": self.max_task_chars,
            "state_range": (
                {"low": list(self.state_low), "high": list(self.state_high or ())}
                if self.state_low is not None
                else None
            ),
        }

    @classmethod
    def from_metadata(cls, meta: dict[str, Any]) -> ObsSchema:
        shape = meta.get("image_shape")
        state_range = meta.get("state_range")
        return cls(
            cameras=tuple(meta["cameras"]),
            state_dim=int(meta["state_dim"]),
            image_shape=tuple(shape) if shape else None,  # type: ignore[arg-type]
            max_image_side=int(meta.get("max_image_side", 1024)),
            max_task_chars=int(meta.get("max_task_chars", 1024)),
            state_low=tuple(state_range["low"]) if state_range else None,
            state_high=tuple(state_range["high"]) if state_range else None,
            action_dim=int(meta.get("action_dim", 0)),
            chunk_size=int(meta.get("chunk_size", 0)),
            rtc_max_delay=int(meta.get("rtc_max_delay", 0) or 0),
        )

    @property
    def required_keys(self) -> set[str]:
        return {image_key(c) for c in self.cameras} | {OBS_STATE, TASK}

    def decode_limits(self, max_message_bytes: int) -> DecodeLimits:
        """What the msgpack decoder may build for one request: a map of the request keys, one
        array map (four entries, a shape list of at most MAX_NDIM ints) per camera and for the
        state, strings no longer than the task. Generous (×2 and a few spare keys) so that a
        request with a wrong key or dtype still decodes and gets its precise schema error."""
        keys = len(self.required_keys) + len(self._optional)  # + reset (and the RTC keys)
        return DecodeLimits(
            max_containers=2 * (1 + 2 * keys),  # top map + (array map + shape list) per key
            max_map_len=2 * keys + 8,
            max_array_len=2 * MAX_NDIM,
            max_str_len=4 * self.max_task_chars + 64,  # UTF-8: up to 4 bytes a character
            max_bin_len=max_message_bytes,
        )

    def validate(self, msg: Any) -> dict[str, Any]:
        """Return the request as a clean observation frame, or raise :class:`SchemaError`."""
        if not isinstance(msg, dict):
            raise SchemaError(f"request must be a map, got {type(msg).__name__}")
        keys = msg.keys()
        if keys != self._keys and keys - self._optional != self._keys:
            self._key_error(msg)
        frame: dict[str, Any] = {}
        for cam in self.cameras:
            key = image_key(cam)
            frame[key] = self._image(key, msg[key])
        frame[OBS_STATE] = self._state(msg[OBS_STATE])
        task = msg[TASK]
        if not isinstance(task, str):
            raise SchemaError(f"{TASK} must be a string, got {type(task).__name__}")
        if len(task) > self.max_task_chars:
            raise SchemaError(f"{TASK} has {len(task)} characters, limit {self.max_task_chars}")
        frame[TASK] = task
        reset = msg.get(RESET, False)
        if not isinstance(reset, bool):
            raise SchemaError(f"{RESET} must be a bool")
        frame[RESET] = reset
        if RTC_PREFIX in msg or RTC_DELAY in msg:
            frame[RTC_PREFIX], frame[RTC_DELAY] = self._committed(msg)
        return frame

    @property
    def _optional(self) -> set[str]:
        return {RESET, RTC_PREFIX, RTC_DELAY} if self.rtc_max_delay > 0 else {RESET}

    def _committed(self, msg: dict) -> tuple[np.ndarray, int]:
        """The real-time chunking keys of a request, checked."""
        if RTC_PREFIX not in msg or RTC_DELAY not in msg:
            raise SchemaError(f"{RTC_PREFIX} and {RTC_DELAY} go together")
        prefix, delay = msg[RTC_PREFIX], msg[RTC_DELAY]
        if not isinstance(prefix, np.ndarray) or prefix.dtype.kind != "f":
            raise SchemaError(f"{RTC_PREFIX} must be a float array")
        if prefix.ndim != 2 or prefix.shape[1] != self.action_dim:
            raise SchemaError(
                f"{RTC_PREFIX} has shape {prefix.shape}, expected (L, {self.action_dim})"
            )
        if not 1 <= prefix.shape[0] <= self.chunk_size:
            raise SchemaError(f"{RTC_PREFIX} has {prefix.shape[0]} rows, 1..{self.chunk_size}")
        if not np.isfinite(prefix).all():
            raise SchemaError(f"{RTC_PREFIX} holds NaN or inf")
        if type(delay) is not int or not 0 <= delay <= min(len(prefix), self.rtc_max_delay):
            raise SchemaError(
                f"{RTC_DELAY} must be an int in 0..{min(len(prefix), self.rtc_max_delay)} "
                f"(the prefix rows and the policy's rtc_max_delay), got {delay!r}"
            )
        return prefix.astype(np.float32), delay

    def _key_error(self, msg: dict) -> None:
        bad_keys = [k for k in msg if not isinstance(k, str)]
        if bad_keys:
            raise SchemaError(f"request keys must be strings, got {bad_keys[:3]!r}")
        missing = sorted(self._keys - msg.keys())
        if missing:
            raise SchemaError(f"request lacks keys {missing}")
        unknown = sorted(msg.keys() - self._keys - self._optional)
        raise SchemaError(f"request has unknown keys {unknown[:5]}")

    def _state(self, state: Any) -> np.ndarray:
        if not isinstance(state, np.ndarray) or state.dtype.kind != "f":
            raise SchemaError(f"{OBS_STATE} must be a float array")
        if state.shape != (self.state_dim,):
            raise SchemaError(f"{OBS_STATE} has shape {state.shape}, expected ({self.state_dim},)")
        # One pass for both checks: NaN fails every comparison, ±inf and huge finite values
        # (1e300 as float64, 3e38 as float32) fail the range.
        inside = (state >= self._low) & (state <= self._high)
        if not inside.all():
            i = int(np.argmin(inside))
            value = float(state[i])
            if not np.isfinite(value):
                raise SchemaError(f"{OBS_STATE}[{i}] is {value}: the state holds NaN or inf")
            where = (
                "the policy's state range"
                if self.state_low is not None
                else "the float32 range (the policy has no state stats)"
            )
            raise SchemaError(
                f"{OBS_STATE}[{i}] = {value:.6g} is outside {where} "
                f"[{self._low[i]:.6g}, {self._high[i]:.6g}]"
            )
        return state.astype(np.float32)

    def _image(self, key: str, img: Any) -> np.ndarray:
        if not isinstance(img, np.ndarray) or img.dtype != np.uint8:
            got = img.dtype if isinstance(img, np.ndarray) else type(img).__name__
            raise SchemaError(f"{key} must be a uint8 array, got {got}")
        if img.ndim != 3 or img.shape[2] != 3:
            raise SchemaError(f"{key} must have shape (H, W, 3), got {img.shape}")
        h, w = img.shape[:2]
        if self.image_shape is not None and (h, w) != tuple(self.image_shape):
            raise SchemaError(f"{key} is {h}x{w}, the policy expects {self.image_shape}")
        if not (0 < h <= self.max_image_side and 0 < w <= self.max_image_side):
            raise SchemaError(f"{key} is {h}x{w}, sides must be 1..{self.max_image_side}")
        return img
