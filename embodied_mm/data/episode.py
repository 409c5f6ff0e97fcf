"""One recorded episode in memory, built frame by frame from LeRobot-keyed frames."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from embodied_mm.features import ACTION, OBS_IMAGES, OBS_STATE, PLAN, TASK


@dataclass
class Episode:
    """A finished episode: T frames of every feature, one instruction.

    ``images`` maps a feature key (``observation.images.front``) to (T, H, W, 3) uint8.
    ``extras``: per-frame numeric features beside state and action, a key (``intervention``)
    to (T,) values (a scalar column) or (T, D).
    """

    task: str
    state: np.ndarray  # (T, S) float32
    action: np.ndarray  # (T, D) float32
    images: dict[str, np.ndarray]
    plan: list[str] | None = None
    seed: int = -1
    success: bool = True
    extras: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.state = np.asarray(self.state, dtype=np.float32)
        self.action = np.asarray(self.action, dtype=np.float32)
        t = len(self.state)
        if t == 0:
            raise ValueError("an episode needs at least one frame")
        if self.state.ndim != 2 or self.action.ndim != 2:
            raise ValueError(
                f"state and action must be (T, dim); got {self.state.shape} and {self.action.shape}"
            )
        lengths = {OBS_STATE: t, ACTION: len(self.action)}
        lengths.update({k: len(v) for k, v in self.images.items()})
        self.extras = {k: np.asarray(v) for k, v in self.extras.items()}
        lengths.update({k: len(v) for k, v in self.extras.items()})
        if self.plan is not None:
            lengths[PLAN] = len(self.plan)
        if len(set(lengths.values())) != 1:
            raise ValueError(f"features have different lengths: {lengths}")
        for key, frames in self.images.items():
            if not key.startswith(OBS_IMAGES + "."):
                raise ValueError(f"image key {key!r} must start with {OBS_IMAGES}.")
            if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
                raise ValueError(f"{key}: expected (T, H, W, 3) uint8, got {frames.shape}")

    def __len__(self) -> int:
        return len(self.state)


@dataclass
class EpisodeBuffer:
    """Collects frames (as made by ``features.env_obs_to_frame``) plus the action taken."""

    frames: list[dict[str, Any]] = field(default_factory=list)
    actions: list[np.ndarray] = field(default_factory=list)
    plans: list[str] = field(default_factory=list)
    extras: dict[str, list[Any]] = field(default_factory=dict)  # key -> one value per frame

    def add(
        self,
        frame: dict[str, Any],
        action: np.ndarray,
        plan: str = "",
        extras: dict[str, Any] | None = None,
    ) -> None:
        """``extras``: this frame's values of the :attr:`Episode.extras` features; every frame
        of an episode gives the same keys."""
        extras = extras or {}
        if self.frames and set(extras) != set(self.extras):
            raise ValueError(f"frame extras {sorted(extras)} differ from {sorted(self.extras)}")
        self.frames.append(frame)
        self.actions.append(np.asarray(action, dtype=np.float32))
        self.plans.append(plan)
        for key, value in extras.items():
            self.extras.setdefault(key, []).append(value)

    def __len__(self) -> int:
        return len(self.frames)

    def finish(self, seed: int = -1, success: bool = True) -> Episode:
        if not self.frames:
            raise ValueError("no frames recorded")
        first = self.frames[0]
        image_keys = [k for k in first if k.startswith(OBS_IMAGES + ".")]
        return Episode(
            task=str(first[TASK]),
            state=np.stack([f[OBS_STATE] for f in self.frames]),
            action=np.stack(self.actions),
            images={k: np.stack([f[k] for f in self.frames]) for k in image_keys},
            plan=list(self.plans),
            seed=seed,
            success=success,
            extras={k: np.asarray(v) for k, v in self.extras.items()},
        )
