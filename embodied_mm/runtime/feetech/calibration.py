"""SO-100/SO-101 arm profiles and their calibration file: servo ticks <-> joint radians.

Calibrating (:func:`calibrate`, ``embodied-mm calibrate --robot so101``) writes each servo's
``Homing_Offset`` so that the middle of the joint's range reads 2048, and its
``Min/Max_Position_Limit`` to the range the user moved the joint through; the file records the
same numbers and each joint's drive mode. Then, per joint,
``rad = sign * (ticks - 2048) * 2π / 4096`` with ``sign = -1`` for drive mode 1 (an inverted
joint: a servo mounted the other way round, or a leader arm built mirror-wise) and ``+1``
otherwise: 0 rad is the middle of the range, as in LeRobot's calibrated degrees.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from embodied_mm.runtime.feetech.bus import FeetechBus
from embodied_mm.runtime.feetech.control_table import (
    CENTER_TICKS,
    HOMING_OFFSET,
    MAX_POSITION_LIMIT,
    MIN_POSITION_LIMIT,
    TICKS_PER_REV,
    Register,
)

RAD_PER_TICK = 2 * math.pi / TICKS_PER_REV
MAX_OFFSET = (1 << HOMING_OFFSET.sign_bit) - 1  # 2047: the homing offset is sign-magnitude
MIN_SWEEP_TICKS = 40  # a joint moved less than this (3.5°) was not swept through its range

JOINT_NAMES = ("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper")


@dataclass(frozen=True)
class ArmProfile:
    name: str
    joints: tuple[tuple[str, int], ...]  # (name, servo id)
    middle_pose: str  # what the user is asked to put the arm in first
    gripper: str = "gripper"


_MIDDLE = (
    "every joint in the middle of its range (upper arm and forearm at right angles, wrist "
    "straight, gripper half open)"
)
PROFILES: dict[str, ArmProfile] = {
    name: ArmProfile(name, tuple((j, i + 1) for i, j in enumerate(JOINT_NAMES)), _MIDDLE)
    for name in ("so100", "so101")
}


def get_profile(name: str) -> ArmProfile:
    if name not in PROFILES:
        raise KeyError(f"unknown Feetech arm {name!r}; known: {', '.join(sorted(PROFILES))}")
    return PROFILES[name]


@dataclass
class JointCalibration:
    name: str
    motor_id: int
    homing_offset: int  # written to the servo: Present_Position = encoder - homing_offset
    range_min: int  # ticks after the offset, written as Min_Position_Limit
    range_max: int  # ... and Max_Position_Limit
    drive_mode: int = 0  # 1: inverted (positive radians turn the servo backwards)

    @property
    def sign(self) -> int:
        return -1 if self.drive_mode else 1

    def registers(self) -> dict[Register, int]:
        """The EEPROM values this calibration puts in the servo."""
        return {
            HOMING_OFFSET: self.homing_offset,
            MIN_POSITION_LIMIT: self.range_min,
            MAX_POSITION_LIMIT: self.range_max,
        }

    def check(self, where: str) -> None:
        problems = []
        if self.drive_mode not in (0, 1):
            problems.append(f"drive_mode must be 0 or 1, got {self.drive_mode}")
        if not -MAX_OFFSET <= self.homing_offset <= MAX_OFFSET:
            problems.append(f"homing_offset must be in -{MAX_OFFSET}..{MAX_OFFSET}")
        if not 0 <= self.range_min < self.range_max < TICKS_PER_REV:
            problems.append(
                f"needs 0 <= range_min < range_max <= {TICKS_PER_REV - 1}, "
                f"got {self.range_min}..{self.range_max}"
            )
        if problems:
            raise ValueError(f"{where}: joint {self.name}: " + "; ".join(problems))


@dataclass
class Calibration:
    robot: str  # "so100" or "so101"
    joints: list[JointCalibration]

    @property
    def profile(self) -> str:
        return self.robot

    @property
    def ids(self) -> list[int]:
        return [j.motor_id for j in self.joints]

    @property
    def names(self) -> list[str]:
        return [j.name for j in self.joints]

    def _ends(self) -> np.ndarray:
        """(J, 2) rad at range_min and range_max."""
        return np.array(
            [
                [j.sign * (t - CENTER_TICKS) * RAD_PER_TICK for t in (j.range_min, j.range_max)]
                for j in self.joints
            ]
        )

    @property
    def low(self) -> np.ndarray:
        return self._ends().min(axis=1)  # (J,)

    @property
    def high(self) -> np.ndarray:
        return self._ends().max(axis=1)  # (J,)

    def to_rad(self, ticks: dict[int, int]) -> np.ndarray:
        """(J,) radians from per-servo Present_Position ticks."""
        return np.array(
            [j.sign * (ticks[j.motor_id] - CENTER_TICKS) * RAD_PER_TICK for j in self.joints]
        )

    def to_ticks(self, rad: np.ndarray) -> dict[int, int]:
        """Goal_Position ticks of (J,) radians, within each joint's range."""
        return {
            j.motor_id: min(
                j.range_max,
                max(j.range_min, round(CENTER_TICKS + j.sign * float(r) / RAD_PER_TICK)),
            )
            for j, r in zip(self.joints, rad, strict=True)
        }

    def save(self, path: str | Path) -> None:
        Path(path).write_text(
            json.dumps({"robot": self.robot, "joints": [asdict(j) for j in self.joints]}, indent=2)
        )

    @classmethod
    def load(cls, path: str | Path) -> Calibration:
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(
                f"calibration file {path} does not exist; run `embodied-mm calibrate --robot so101`"
            )
        try:
            raw = json.loads(path.read_text())
            get_profile(raw["robot"])
            joints = [JointCalibration(**j) for j in raw["joints"]]
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise ValueError(f"{path} is not a valid SO-100/SO-101 calibration file: {e}") from e
        for j in joints:
            j.check(str(path))
        return cls(raw["robot"], joints)


def _wrap_offset(offset: int) -> int:
    """An offset as the servo can hold it: mod 4096 into -2047..2047 (-2048 ≡ 2048 fits in
    neither: it becomes -2047, one tick off)."""
    offset = (offset + TICKS_PER_REV // 2) % TICKS_PER_REV - TICKS_PER_REV // 2
    return max(-MAX_OFFSET, offset)


def calibrate(
    bus: FeetechBus,
    profile: ArmProfile,
    wait_for_user: Callable[[str], None],
    sweep_done: Callable[[], bool],
    inverted: Iterable[str] = (),
    sample_period_s: float = 0.02,
) -> Calibration:
    """Interactive calibration; every servo's torque goes off (the user moves the arm by hand).

    1. offsets and limits are cleared, the user puts the arm in the middle pose, and each
       servo's offset is written so that pose reads 2048 (a range then never crosses the
       encoder's 4095 -> 0 wrap);
    2. the user moves every joint through its full range until ``sweep_done()``;
    3. each offset is shifted so that the middle of the range seen reads 2048, and the offset
       and the range are written to the servo. ``inverted`` joints get drive mode 1.
    A joint moved less than :data:`MIN_SWEEP_TICKS` raises ValueError (nothing is saved).
    """
    inverted = set(inverted)
    unknown = inverted - {name for name, _ in profile.joints}
    if unknown:
        raise ValueError(
            f"no joint {sorted(unknown)} on {profile.name}; joints: "
            + ", ".join(name for name, _ in profile.joints)
        )
    ids = [i for _, i in profile.joints]
    bus.set_torque(ids, False)
    full = {HOMING_OFFSET: 0, MIN_POSITION_LIMIT: 0, MAX_POSITION_LIMIT: TICKS_PER_REV - 1}
    for i in ids:
        bus.write_eeprom(i, full)
    wait_for_user(f"Put the arm in the middle pose ({profile.middle_pose}), then press Enter.")
    encoder = bus.sync_read_positions(ids)  # offset 0: the raw encoder
    offsets = {i: _wrap_offset(encoder[i] - CENTER_TICKS) for i in ids}
    for i in ids:
        bus.write_eeprom(i, {HOMING_OFFSET: offsets[i]})
    wait_for_user("Move every joint through its full range, then press Enter.")
    start = bus.sync_read_positions(ids)
    lo, hi = dict(start), dict(start)
    while not sweep_done():
        for i, t in bus.sync_read_positions(ids).items():
            lo[i], hi[i] = min(lo[i], t), max(hi[i], t)
        time.sleep(sample_period_s)
    still = [name for name, i in profile.joints if hi[i] - lo[i] < MIN_SWEEP_TICKS]
    if still:
        raise ValueError(
            f"joints {', '.join(still)} were not moved through their range "
            f"(less than {MIN_SWEEP_TICKS} ticks); calibrate again"
        )
    joints = []
    for name, i in profile.joints:
        final = _wrap_offset(offsets[i] + (lo[i] + hi[i]) // 2 - CENTER_TICKS)
        shift = (final - offsets[i]) % TICKS_PER_REV  # the readings move down by this much
        range_min = (lo[i] - shift) % TICKS_PER_REV
        joint = JointCalibration(
            name, i, final, range_min, range_min + hi[i] - lo[i], int(name in inverted)
        )
        joint.check(f"calibration of {profile.name}")
        bus.write_eeprom(i, joint.registers())
        joints.append(joint)
    return Calibration(profile.name, joints)
