"""The leader arm: a second arm on its own bus, moved by hand, whose calibrated joint positions
become the follower's joint targets (``joint_pos``).

The leader's servos have torque off (a person moves them). Arm joints follow one to one in
calibrated radians, so two arms calibrated in the same middle pose agree however their servos
are mounted (a mirror-built joint has drive mode 1 in its file); the gripper's calibrated range
is rescaled onto the follower's (:class:`~embodied_mm.teleop.config.LeaderConfig`).

A jump of the leader (a calibration error, a cable pulled and plugged back) is not followed:
its targets go through the follower's safety filter, whose per-step limit
(``max_velocity / hz``) walks the follower there. A read that fails after the bus's retries
gives no action (``action=None``): the watchdog holds the follower and, if the leader stays
silent, stops the run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np

from embodied_mm.errors import UsageError
from embodied_mm.features import ACTION
from embodied_mm.runtime.adapters.servo_arm import JointMap, ServoBus
from embodied_mm.runtime.robot import FeatureSpec, Robot
from embodied_mm.runtime.servo_bus import BusError, HardwareError
from embodied_mm.teleop.base import TeleopCommand, Teleoperator
from embodied_mm.teleop.config import LeaderConfig

log = logging.getLogger(__name__)


class LeaderTeleop(Teleoperator):
    action_space = "joint_pos"

    def __init__(
        self,
        name: str,
        bus: ServoBus,
        calibration: JointMap,
        config: LeaderConfig | None = None,
        prepare: Callable[[], None] | None = None,
    ) -> None:
        """``prepare``: called after every servo answered a ping and its torque is off (the
        Feetech leader writes its calibration into the servos there)."""
        self.name = name
        self.bus = bus
        self.calibration = calibration
        self.config = config or LeaderConfig()
        self.prepare = prepare
        names = calibration.names
        g = self.config.gripper
        self.gripper_index = names.index(g) if g is not None and g in names else None
        self._follower_gripper: tuple[float, float] | None = None
        self.read_errors = 0  # reads that failed (each gave no action)

    @property
    def action_features(self) -> dict[str, FeatureSpec]:
        names = self.calibration.names
        return {ACTION: {"dtype": "float32", "shape": (len(names),), "names": names}}

    @property
    def is_connected(self) -> bool:
        return self.bus.is_open

    def connect(self) -> None:
        self.bus.open()
        try:
            for i in self.calibration.ids:
                self.bus.ping(i)
            self.bus.set_torque(self.calibration.ids, False)  # moved by hand
            if self.prepare is not None:
                self.prepare()
        except Exception:
            self.bus.close()
            raise

    def disconnect(self) -> None:
        self.bus.close()

    def attach(self, robot: Robot) -> None:
        """Check the follower takes this arm's joints (same names, in order) and take its
        gripper range."""
        follower = list(robot.action_features[ACTION].get("names") or [])
        if follower != self.calibration.names:
            raise UsageError(
                f"leader {self.name} has joints {self.calibration.names}; follower "
                f"{robot.name} takes {follower}"
            )
        if self.gripper_index is None or not self.config.rescale_gripper:
            return
        safety = robot.default_safety()
        if safety.action_low is None or safety.action_high is None:
            raise UsageError(f"follower {robot.name} declares no joint range to map the gripper")
        g = self.gripper_index
        self._follower_gripper = (float(safety.action_low[g]), float(safety.action_high[g]))

    def read_joints(self) -> np.ndarray:
        """(J,) the leader's calibrated joint radians."""
        return self.calibration.to_rad(self.bus.sync_read_positions(self.calibration.ids))

    def get_action(self) -> TeleopCommand:
        try:
            rad = self.read_joints()
        except (BusError, HardwareError) as e:
            self.read_errors += 1
            log.warning("leader %s: no reading (%s); the follower holds", self.name, e)
            return TeleopCommand(None)
        if self._follower_gripper is not None and self.gripper_index is not None:
            g = self.gripper_index
            lo, hi = float(self.calibration.low[g]), float(self.calibration.high[g])
            f_lo, f_hi = self._follower_gripper
            rad[g] = f_lo + (rad[g] - lo) / (hi - lo) * (f_hi - f_lo)
        return TeleopCommand(rad)


def feetech_leader(
    port: str, calibration_file: Path, config: LeaderConfig | None = None
) -> LeaderTeleop:
    """An SO-100/SO-101 leader arm (Feetech STS3215): connecting writes the file's homing
    offsets and limits into servos that hold others (their torque is off: nothing drops)."""
    from embodied_mm.runtime.feetech.bus import FeetechBus
    from embodied_mm.runtime.feetech.calibration import Calibration

    cal = Calibration.load(calibration_file)
    bus = FeetechBus(port, motor_names={j.motor_id: j.name for j in cal.joints})

    def write_calibration() -> None:
        for joint in cal.joints:
            held = {reg: bus.read(joint.motor_id, reg) for reg in joint.registers()}
            differ = {reg: v for reg, v in joint.registers().items() if held[reg] != v}
            if differ:
                log.info("writing calibration to leader %s: %s", bus.motor(joint.motor_id), differ)
                bus.write_eeprom(joint.motor_id, differ)

    return LeaderTeleop(f"leader:{cal.robot}", bus, cal, config, prepare=write_calibration)


def dynamixel_leader(
    port: str, calibration_file: Path, config: LeaderConfig | None = None
) -> LeaderTeleop:
    """A Dynamixel leader arm (Koch, ALOHA); its calibration file maps ticks to radians."""
    from embodied_mm.runtime.dynamixel.bus import DynamixelBus
    from embodied_mm.runtime.dynamixel.calibration import Calibration

    cal = Calibration.load(calibration_file)
    return LeaderTeleop(f"leader:{cal.profile}", DynamixelBus(port), cal, config)
