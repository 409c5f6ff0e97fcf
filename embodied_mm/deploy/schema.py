"""What an observation request to the policy server must look like, and its validation.

The server publishes the schema in its connect-time metadata (:meth:`ObsSchema.to_metadata`)
and checks every decoded request against it before anything reaches the model: the exact key
set, each array's dtype and shape, string lengths. A failure raises :class:`SchemaError` whose
text names the offending key, which the server sends back as the error reply.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from embodied_mm.features import OBS_STATE, TASK, image_key

# Optional request keys besides the observation: ``reset`` asks the server to reset the
# policy's internal state (e.g. a recurrent plan) before inferring.
RESET = "reset"


class SchemaError(ValueError):
    """A request that does not match the server's observation schema."""


@dataclass(frozen=True)
class ObsSchema:
    """One unbatched observation: images (H, W, 3) uint8 per camera, state (S,), task text."""

    cameras: tuple[str, ...]
    state_dim: int
    image_shape: tuple[int, int] | None = None  # (H, W); None: any size up to max_image_side
    max_image_side: int = 1024
    max_task_chars: int = 1024

    def to_metadata(self) -> dict[str, Any]:
        return {
            "cameras": list(self.cameras),
            "state_dim": self.state_dim,
            "image_shape": list(self.image_shape) if self.image_shape else None,
            "max_image_side": self.max_image_side,
            "max_task_chars": self.max_task_chars,
        }

    @classmethod
    def from_metadata(cls, meta: dict[str, Any]) -> ObsSchema:
        shape = meta.get("image_shape")
        return cls(
            cameras=tuple(meta["cameras"]),
            state_dim=int(meta["state_dim"]),
            image_shape=tuple(shape) if shape else None,  # type: ignore[arg-type]
            max_image_side=int(meta.get("max_image_side", 1024)),
            max_task_chars=int(meta.get("max_task_chars", 1024)),
        )

    @property
    def required_keys(self) -> set[str]:
        return {image_key(c) for c in self.cameras} | {OBS_STATE, TASK}

    def validate(self, msg: Any) -> dict[str, Any]:
        """Return the request as a clean observation frame, or raise :class:`SchemaError`."""
        if not isinstance(msg, dict):
            raise SchemaError(f"request must be a map, got {type(msg).__name__}")
        bad_keys = [k for k in msg if not isinstance(k, str)]
        if bad_keys:
            raise SchemaError(f"request keys must be strings, got {bad_keys[:3]!r}")
        missing = sorted(self.required_keys - msg.keys())
        if missing:
            raise SchemaError(f"request lacks keys {missing}")
        unknown = sorted(msg.keys() - self.required_keys - {RESET})
        if unknown:
            raise SchemaError(f"request has unknown keys {unknown[:5]}")
        frame: dict[str, Any] = {}
        for cam in self.cameras:
            key = image_key(cam)
            frame[key] = self._image(key, msg[key])
        state = msg[OBS_STATE]
        if not isinstance(state, np.ndarray) or state.dtype.kind != "f":
            raise SchemaError(f"{OBS_STATE} must be a float array")
        if state.shape != (self.state_dim,):
            raise SchemaError(f"{OBS_STATE} has shape {state.shape}, expected ({self.state_dim},)")
        if not np.isfinite(state).all():
            raise SchemaError(f"{OBS_STATE} holds NaN or inf")
        frame[OBS_STATE] = state.astype(np.float32)
        task = msg[TASK]
        if not isinstance(task, str):
            raise SchemaError(f"{TASK} must be a string, got {type(task).__name__}")
        if len(task) > self.max_task_chars:
            raise SchemaError(f"{TASK} has {len(task)} characters, limit {self.max_task_chars}")
        frame[TASK] = task
        if RESET in msg and not isinstance(msg[RESET], bool):
            raise SchemaError(f"{RESET} must be a bool")
        frame[RESET] = bool(msg.get(RESET, False))
        return frame

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
