"""The data contract: feature names follow LeRobot.

Every boundary (env observations, robot readings, dataset frames, policy batches, the wire
protocol) speaks these keys; one small adapter per boundary maps into them and nothing else
renames.

- ``observation.images.<camera>``: uint8 image, (H, W, 3) per frame, (B, H, W, 3) batched
- ``observation.state``: float32 proprioception, (S,) / (B, S)
- ``action``: float32 robot command, (D,) / (B, D); chunks are (B, K, D)
- ``task``: the language instruction, str / list[str]
- ``plan``: optional sub-task text, str / list[str]
- ``intervention``: uint8, (1,) per frame in the dataset (a scalar column): 1 = a person
  drove this frame (``deploy --teleop``), 0 = the policy did
"""

from __future__ import annotations

from typing import Any

import numpy as np

OBS_IMAGES = "observation.images"
OBS_STATE = "observation.state"
ACTION = "action"
TASK = "task"
PLAN = "plan"
INTERVENTION = "intervention"
# Not a stored feature: the state at the last frame of a sample's episode (its hindsight goal),
# which the window dataset adds on request for the policy's goal-prediction loss.
FINAL_STATE = "episode_final_state"
# Likewise: the state at the last frame of the episode's first plan phase (its first waypoint,
# e.g. above the object to pick); the final state where the episode has no plan labels.
FIRST_PHASE_STATE = "episode_first_phase_state"
# Likewise: the state at the last frame of the plan phase the sample is in (where that phase
# takes the gripper: behind the cube, then down, then through it); the final state where the
# episode has no plan labels.
PHASE_END_STATE = "episode_phase_end_state"
# goal_waypoints of the policy config -> the batch key holding that waypoint's state
WAYPOINT_KEYS = {
    "first_phase": FIRST_PHASE_STATE,
    "phase_end": PHASE_END_STATE,
    "final": FINAL_STATE,
}


def image_key(camera: str) -> str:
    """``image_key("front") == "observation.images.front"``."""
    return f"{OBS_IMAGES}.{camera}"


def camera_of(key: str) -> str:
    """Inverse of :func:`image_key`."""
    prefix = OBS_IMAGES + "."
    if not key.startswith(prefix):
        raise ValueError(f"{key!r} is not an image feature (expected {prefix}<camera>)")
    return key[len(prefix) :]


def batch_tasks(obs: dict[str, Any], batch: int) -> list[str]:
    """The ``task`` of a batched observation as ``batch`` instructions (one str is broadcast)."""
    tasks = obs.get(TASK)
    if isinstance(tasks, str):
        tasks = [tasks] * batch
    if tasks is None or len(tasks) != batch:
        raise ValueError(f"{TASK!r} must be a list of {batch} instructions; got {tasks!r}")
    return [str(t) for t in tasks]


def env_obs_to_frame(obs: dict[str, Any], task: str) -> dict[str, Any]:
    """Map a Gymnasium observation of our envs to LeRobot feature keys.

    Our envs follow the gym-aloha / gym-pusht convention that LeRobot reads:
    ``{"pixels": {camera: (H, W, 3) uint8}, "agent_pos": (S,) float32}``.
    """
    missing = [k for k in ("pixels", "agent_pos") if k not in obs]
    if missing:
        raise KeyError(f"env observation lacks {missing}; found keys {sorted(obs)}")
    frame: dict[str, Any] = {
        image_key(cam): np.asarray(img, dtype=np.uint8) for cam, img in obs["pixels"].items()
    }
    frame[OBS_STATE] = np.asarray(obs["agent_pos"], dtype=np.float32)
    frame[TASK] = task
    return frame
