"""A Koch-like arm rig for stop tests: a calibration with a gripper, a policy that always
commands the same pose, and a looping video-file camera."""

from pathlib import Path

import cv2
import numpy as np

from embodied_mm.features import ACTION, OBS_STATE
from embodied_mm.model.normalize import unit_stats
from embodied_mm.runtime.dynamixel.calibration import RAD_PER_TICK, Calibration, JointCalibration

NAMES = ["shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper"]
IDS = list(range(1, 7))
# the pose the policy commands: the gripper closes to 0.4 rad ...
TARGET = np.array([0.2, -0.1, 0.1, 0.05, 0.0, 0.4])
# ... but an object between its jaws stops it at 0.15 rad
OBJECT_RAD = 0.15


def calibration() -> Calibration:
    joints = [JointCalibration(n, i, 2048, 1, -0.5, 0.5) for i, n in zip(IDS, NAMES, strict=True)]
    joints[-1].min_rad, joints[-1].max_rad = -0.2, 1.0
    return Calibration("koch", joints)


def ticks(rad: float) -> int:
    """Goal/present register value of ``rad`` (offset 2048, direction +1 on every joint)."""
    return round(2048 + rad / RAD_PER_TICK)


def steady_policy():
    """The real tiny recipe for this arm (1 camera, 6-D state and action) whose every action
    is :data:`TARGET`: its action stats have q01 == q99 == TARGET, so the q01_q99
    unnormalisation maps whatever the (random) head predicts onto it."""
    from embodied_mm.policies import make_policy

    action = {k: TARGET.tolist() for k in ("mean", "min", "max", "q01", "q99")}
    action["std"] = [1.0] * 6
    stats = {OBS_STATE: unit_stats(6), ACTION: action}
    policy = make_policy(
        "vla-chunk", size="tiny", cameras=["front"], state_dim=6, action_dim=6, stats=stats
    )
    return policy.eval()


def write_clip(path: Path, n: int = 30) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30, (128, 128))
    for i in range(n):
        writer.write(np.full((128, 128, 3), 8 * i, np.uint8))
    writer.release()
    return path
