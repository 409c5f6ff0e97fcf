"""Arm profiles and the calibration file: motor ticks ↔ joint radians, per joint.

``rad = direction * (ticks - offset_ticks) * 2π / 4096``; ``offset_ticks`` is the reading at
the profile's zero pose, ``direction`` (±1) makes positive radians turn the way the profile's
convention says, and ``[min_rad, max_rad]`` is the range measured while the user moved the joint
through it, never wider than the profile's nominal range. ``embodied-mm calibrate`` writes the
file (see :func:`calibrate`).

Dual-motor joints of ViperX/ALOHA arms (shoulder, elbow) are addressed through their primary
ID only: the second motor follows it in firmware (its Secondary ID register), as Interbotix
configures them.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from embodied_mm.runtime.dynamixel.control_table import TICKS_PER_REV

RAD_PER_TICK = 2 * math.pi / TICKS_PER_REV


@dataclass(frozen=True)
class JointSpec:
    name: str
    motor_id: int
    nominal_min: float  # rad, the mechanical range the profile allows
    nominal_max: float
    direction: int = 1


@dataclass(frozen=True)
class ArmProfile:
    name: str
    joints: tuple[JointSpec, ...]
    zero_pose: str  # what the user is asked to put the arm in
    gripper: str | None = "gripper"


PI = math.pi
PROFILES: dict[str, ArmProfile] = {
    "koch": ArmProfile(
        "koch",
        (
            JointSpec("shoulder_pan", 1, -PI, PI),
            JointSpec("shoulder_lift", 2, -PI / 2, PI / 2),
            JointSpec("elbow_flex", 3, -PI / 2, PI),
            JointSpec("wrist_flex", 4, -PI / 2, PI / 2),
            JointSpec("wrist_roll", 5, -PI, PI),
            JointSpec("gripper", 6, -0.2, 1.8),
        ),
        zero_pose="arm straight up, wrist aligned with the forearm, gripper closed",
    ),
    "aloha-viperx": ArmProfile(
        "aloha-viperx",
        (
            JointSpec("waist", 1, -PI, PI),
            JointSpec("shoulder", 2, -1.85, 1.26),
            JointSpec("elbow", 4, -1.76, 1.61),
            JointSpec("forearm_roll", 6, -PI, PI),
            JointSpec("wrist_angle", 7, -1.87, 2.23),
            JointSpec("wrist_rotate", 8, -PI, PI),
            JointSpec("gripper", 9, -0.7, 0.7),
        ),
        zero_pose="Interbotix sleep-to-home zero: upper arm vertical, forearm horizontal, gripper closed",
    ),
    "openmanipulator-x": ArmProfile(
        "openmanipulator-x",
        (
            JointSpec("joint1", 11, -2.83, 2.83),
            JointSpec("joint2", 12, -1.79, 1.57),
            JointSpec("joint3", 13, -0.94, 1.38),
            JointSpec("joint4", 14, -1.79, 2.04),
            JointSpec("gripper", 15, -1.2, 0.7),
        ),
        zero_pose="all joints at their marked zero (arm upright, gripper closed)",
    ),
}


def get_profile(name: str) -> ArmProfile:
    if name not in PROFILES:
        raise KeyError(f"unknown arm profile {name!r}; known: {', '.join(sorted(PROFILES))}")
    return PROFILES[name]


@dataclass
class JointCalibration:
    name: str
    motor_id: int
    offset_ticks: int
    direction: int
    min_rad: float
    max_rad: float


@dataclass
class Calibration:
    profile: str
    joints: list[JointCalibration]

    @property
    def ids(self) -> list[int]:
        return [j.motor_id for j in self.joints]

    @property
    def names(self) -> list[str]:
        return [j.name for j in self.joints]

    @property
    def low(self) -> np.ndarray:
        return np.array([j.min_rad for j in self.joints])  # (J,)

    @property
    def high(self) -> np.ndarray:
        return np.array([j.max_rad for j in self.joints])  # (J,)

    def to_rad(self, ticks: dict[int, int]) -> np.ndarray:
        """(J,) radians from per-motor ticks."""
        return np.array(
            [j.direction * (ticks[j.motor_id] - j.offset_ticks) * RAD_PER_TICK for j in self.joints]
        )

    def to_ticks(self, rad: np.ndarray) -> dict[int, int]:
        return {
            j.motor_id: round(j.offset_ticks + j.direction * float(r) / RAD_PER_TICK)
            for j, r in zip(self.joints, rad, strict=True)
        }

    def save(self, path: str | Path) -> None:
        Path(path).write_text(
            json.dumps(
                {"profile": self.profile, "joints": [asdict(j) for j in self.joints]}, indent=2
            )
        )

    @classmethod
    def load(cls, path: str | Path) -> Calibration:
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(
                f"calibration file {path} does not exist; run `embodied-mm calibrate`"
            )
        try:
            raw = json.loads(path.read_text())
            get_profile(raw["profile"])
            joints = [JointCalibration(**j) for j in raw["joints"]]
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise ValueError(f"{path} is not a valid calibration file: {e}") from e
        for j in joints:
            if j.direction not in (1, -1):
                raise ValueError(
                    f"{path}: joint {j.name} direction must be 1 or -1, got {j.direction}"
                )
            if not j.min_rad < j.max_rad:
                raise ValueError(
                    f"{path}: joint {j.name} has min_rad {j.min_rad} >= max_rad {j.max_rad}"
                )
        return cls(raw["profile"], joints)


def calibrate(
    read_ticks: Callable[[], dict[int, int]],
    profile: ArmProfile,
    wait_for_user: Callable[[str], None],
    sweep_done: Callable[[], bool],
    sample_period_s: float = 0.02,
) -> Calibration:
    """Interactive calibration with the motors' torque off.

    1. the user puts the arm in the profile's zero pose → offsets;
    2. the user moves every joint through its full range until ``sweep_done()`` → limits, the
       range seen clipped to the nominal range (a joint never moved keeps the nominal range).
    """
    wait_for_user(f"Put the arm in the zero pose ({profile.zero_pose}), then press Enter.")
    zero = read_ticks()
    wait_for_user("Move every joint through its full range, then press Enter.")
    lo = {j.motor_id: zero[j.motor_id] for j in profile.joints}
    hi = dict(lo)
    while not sweep_done():
        ticks = read_ticks()
        for i, t in ticks.items():
            lo[i], hi[i] = min(lo[i], t), max(hi[i], t)
        time.sleep(sample_period_s)
    joints = []
    for spec in profile.joints:
        off = zero[spec.motor_id]
        ends = sorted(
            spec.direction * (t - off) * RAD_PER_TICK
            for t in (lo[spec.motor_id], hi[spec.motor_id])
        )
        if ends[1] - ends[0] < 1e-3:  # not moved: trust the profile
            ends = [spec.nominal_min, spec.nominal_max]
        joints.append(
            JointCalibration(
                spec.name,
                spec.motor_id,
                off,
                spec.direction,
                max(ends[0], spec.nominal_min),
                min(ends[1], spec.nominal_max),
            )
        )
    return Calibration(profile.name, joints)
