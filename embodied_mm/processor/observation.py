"""``observation_check``: the robot observation a policy accepts (host stage, numpy or torch).

Checks the LeRobot keys the policy needs, their shapes and the batch size; takes the last
step of an observation history; broadcasts a single instruction string over the batch. The
state layout (``state_names``, from the dataset's or robot's ``observation.state`` feature)
is saved with the policy so a client can tell which dims it must send.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from embodied_mm.features import OBS_STATE, TASK, batch_tasks, image_key
from embodied_mm.processor.core import Resources, Step


def _array(x: Any) -> Any:
    """Tensors stay tensors (no copy, no device move); anything else becomes a numpy array."""
    return x if hasattr(x, "detach") else np.asarray(x)


def _dtype(x: Any) -> str:
    return str(x.dtype).removeprefix("torch.")


@dataclass
class ObservationCheckParams:
    cameras: list[str]
    state_dim: int
    # Camera frame size the policy requires, or None for any (the camera_pixels step resizes).
    image_size: int | None = None
    # Names of the state dims (the robot's / dataset's layout), or None when unknown.
    state_names: list[str] | None = None

    def __post_init__(self) -> None:
        if not self.cameras:
            raise ValueError("cameras must name at least one camera")
        if self.state_dim < 1:
            raise ValueError(f"state_dim must be >= 1; got {self.state_dim}")
        if self.state_names is not None and len(self.state_names) != self.state_dim:
            raise ValueError(
                f"state_names has {len(self.state_names)} names for state_dim {self.state_dim}"
            )


class ObservationCheck(Step):
    name = "observation_check"
    stage = "host"
    side = "input"
    Params = ObservationCheckParams

    def __init__(self, params: ObservationCheckParams) -> None:
        self.params = params
        self.image_keys = [image_key(c) for c in params.cameras]

    @classmethod
    def from_params(cls, params: ObservationCheckParams, resources: Resources) -> ObservationCheck:
        return cls(params)

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        s = self.params.state_dim
        if OBS_STATE not in batch:
            raise KeyError(f"observation lacks {OBS_STATE!r}; found keys {sorted(batch)}")
        state = _array(batch[OBS_STATE])
        if state.ndim == 3:
            state = state[:, -1]  # (B, S): the last step of an observation history
        if state.ndim != 2 or state.shape[1] != s:
            raise ValueError(
                f"{OBS_STATE} must be (B, {s}) or (B, T, {s}); got {tuple(state.shape)}"
            )
        b = state.shape[0]
        batch[OBS_STATE] = state
        batch[TASK] = batch_tasks(batch, b)
        for key in self.image_keys:
            if key not in batch:
                raise KeyError(f"observation lacks {key!r}; found keys {sorted(batch)}")
            batch[key] = self._image(key, _array(batch[key]), b)
        return batch

    def _image(self, key: str, img: Any, batch: int) -> Any:
        """uint8 (B, H, W, 3) or float (B, 3, H, W) in [0, 1], history (B, T, ...) allowed."""
        dtype = _dtype(img)
        if img.ndim == 5:
            img = img[:, -1]  # the last step of an observation history
        if dtype == "uint8":
            if img.ndim != 4 or img.shape[-1] != 3:
                raise ValueError(
                    f"uint8 {key} must be (B, H, W, 3) or (B, T, H, W, 3); got {tuple(img.shape)}"
                )
            hw = tuple(img.shape[1:3])
        elif dtype.startswith(("float", "bfloat")):
            if img.ndim != 4 or img.shape[1] != 3:
                raise ValueError(
                    f"float {key} must be (B, 3, H, W) or (B, T, 3, H, W) in [0, 1]; "
                    f"got {tuple(img.shape)}"
                )
            hw = tuple(img.shape[2:4])
        else:
            raise ValueError(f"{key} must be uint8 or float images; got {dtype}")
        if img.shape[0] != batch:
            raise ValueError(f"{key} has batch {img.shape[0]}, {OBS_STATE} has {batch}")
        size = self.params.image_size
        if size is not None and hw != (size, size):
            raise ValueError(
                f"{key} frames are {hw[0]}x{hw[1]}; this policy takes {size}x{size} "
                "(resize frames to the policy's image size)"
            )
        return img
