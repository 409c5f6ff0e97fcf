"""A real servo arm (Dynamixel or Feetech bus) with OpenCV cameras: what both adapters share.

Actions and ``observation.state`` are joint positions in radians, in the calibration file's
joint order (gripper last in every shipped profile). Connecting reads the present position
and writes it as the goal *before* enabling torque, so the arm does not jump to a stale goal.

The arm never goes limp on its own: every stop (e-stop, watchdog, motor or bus fault) and
:meth:`ServoArmRobot.disconnect` leave torque on with the arm held where it is and the
gripper at its last commanded target (a hold must not drop a grasped object). Only
``release_on_disconnect=True`` (``deploy --release-on-exit``) turns torque off at the end.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Protocol

import numpy as np

from embodied_mm.features import ACTION, OBS_STATE, image_key
from embodied_mm.runtime.adapters.opencv_camera import OpenCVCamera
from embodied_mm.runtime.robot import FeatureSpec, Robot, RobotObservation, check_action
from embodied_mm.runtime.safety import SafetyConfig
from embodied_mm.runtime.servo_bus import BusError, HardwareError

log = logging.getLogger(__name__)


class ServoBus(Protocol):
    is_open: bool

    def open(self) -> None: ...

    def close(self) -> None: ...

    def ping(self, motor_id: int) -> int: ...

    def sync_read_positions(self, ids: Sequence[int]) -> dict[int, int]: ...

    def sync_write_goals(self, goals: dict[int, int]) -> None: ...

    def set_torque(self, ids: Sequence[int], enabled: bool) -> None: ...


class JointMap(Protocol):
    """A calibration: motor ticks <-> joint radians, and the joints' limits."""

    @property
    def ids(self) -> list[int]: ...

    @property
    def names(self) -> list[str]: ...

    @property
    def low(self) -> np.ndarray: ...

    @property
    def high(self) -> np.ndarray: ...

    def to_rad(self, ticks: dict[int, int]) -> np.ndarray: ...

    def to_ticks(self, rad: np.ndarray) -> dict[int, int]: ...


class ServoArmRobot(Robot):
    def __init__(
        self,
        name: str,
        bus: ServoBus,
        calibration: JointMap,
        gripper: str | None,
        cameras: dict[str, OpenCVCamera] | None = None,
        max_velocity_rad_s: float = 1.5,
        release_on_disconnect: bool = False,
    ) -> None:
        """``gripper``: the name of the gripper joint (None: the arm has none).
        ``release_on_disconnect``: turn torque off in :meth:`disconnect` (the arm then falls
        under gravity); by default the arm is held with torque on."""
        super().__init__()
        self.name = name
        self.calibration = calibration
        self.bus = bus
        self.cameras = cameras or {}
        self.max_velocity_rad_s = max_velocity_rad_s
        self.release_on_disconnect = release_on_disconnect
        self._present: np.ndarray | None = None  # (J,) rad, last read
        names = calibration.names
        self.gripper_index = names.index(gripper) if gripper in names else None
        self._gripper_target: float | None = None  # rad, last commanded (None: none yet)

    def _prepare_motors(self) -> None:
        """Called on connect after every motor answered a ping, before torque goes on."""

    @property
    def observation_features(self) -> dict[str, FeatureSpec]:
        feats: dict[str, FeatureSpec] = {
            OBS_STATE: {
                "dtype": "float32",
                "shape": (len(self.calibration.names),),
                "names": self.calibration.names,
            }
        }
        for name, cam in self.cameras.items():
            h, w = cam.size if cam.size else (None, None)
            feats[image_key(name)] = {
                "dtype": "uint8",
                "shape": (h, w, 3),
                "names": ["height", "width", "channel"],
            }
        return feats

    @property
    def action_features(self) -> dict[str, FeatureSpec]:
        return {
            ACTION: {
                "dtype": "float32",
                "shape": (len(self.calibration.names),),
                "names": self.calibration.names,
            }
        }

    @property
    def is_connected(self) -> bool:
        return self.bus.is_open

    def connect(self) -> None:
        self.bus.open()
        try:
            for i in self.calibration.ids:
                self.bus.ping(i)
            self._prepare_motors()
            ticks = self.bus.sync_read_positions(self.calibration.ids)
            self.bus.sync_write_goals(ticks)  # goal = here, then torque on: no jump
            self.bus.set_torque(self.calibration.ids, True)
            self._present = self.calibration.to_rad(ticks)
            self._gripper_target = None
            for cam in self.cameras.values():
                cam.connect()
        except Exception:
            self.bus.close()
            raise

    def disconnect(self) -> None:
        """Hold the arm (torque stays on) and close the port; with ``release_on_disconnect``
        turn torque off instead."""
        for cam in self.cameras.values():
            cam.disconnect()
        if not self.bus.is_open:
            return
        try:
            if self.release_on_disconnect:
                # motor by motor: one faulted motor (its firmware already cut its torque) must
                # not leave the others powered
                for i in self.calibration.ids:
                    try:
                        self.bus.set_torque([i], False)
                    except (BusError, HardwareError) as e:
                        log.warning("torque off for motor %d failed: %s", i, e)
            else:
                try:
                    self.safe_stop()
                except (BusError, HardwareError) as e:
                    # the goals written last stay in the motors, torque on: still a hold
                    log.warning("hold on disconnect failed (motors keep their last goal): %s", e)
        finally:
            self.bus.close()

    def read_joints(self) -> np.ndarray:
        """(J,) rad, one sync read."""
        self._present = self.calibration.to_rad(self.bus.sync_read_positions(self.calibration.ids))
        return self._present

    def get_observation(self) -> RobotObservation:
        frame: dict = {OBS_STATE: self.read_joints().astype(np.float32)}
        stamps: dict[str, float] = {}
        for name, cam in self.cameras.items():
            f = cam.latest()
            if f is None:
                raise ConnectionError(f"camera {name} has no frame")
            frame[image_key(name)] = f.image
            stamps[name] = f.stamp
        return RobotObservation(frame, stamps)

    def send_action(self, action: np.ndarray) -> None:
        rad = np.clip(check_action(self, action), self.calibration.low, self.calibration.high)
        if not np.isfinite(rad).all():
            bad = np.flatnonzero(~np.isfinite(rad)).tolist()
            raise ValueError(f"{self.name}: action has NaN/inf in joints {bad}; nothing sent")
        self.bus.sync_write_goals(self.calibration.to_ticks(rad))
        if self.gripper_index is not None:
            self._gripper_target = float(rad[self.gripper_index])

    def hold_action(self) -> np.ndarray:
        """(J,) rad: the arm joints where they were last read, the gripper at its last
        commanded target. A gripper closed on an object stops short of its target; holding
        its *present* position would loosen the grip at every hold."""
        if self._present is None:
            self.read_joints()
        assert self._present is not None
        hold = self._present.copy()
        if self.gripper_index is not None and self._gripper_target is not None:
            hold[self.gripper_index] = self._gripper_target
        return hold

    def safe_stop(self) -> None:
        """Hold where the arm is now, torque on (turning it off would drop the arm).

        The joints are read again and written back as the goal (the gripper's: its last
        target). When the bus cannot read them (a motor stopped answering or reports a fault)
        nothing is written: the motors keep their last goal, one rate-limited step from where
        they were last read, which is a hold too; writing the stale reading back would move
        the arm backwards. Raises only when a write fails."""
        try:
            self.read_joints()
        except (BusError, HardwareError) as e:
            log.warning("safe stop: joints unreadable (%s); the motors keep their last goal", e)
            return
        self.send_action(self.hold_action())

    def default_safety(self) -> SafetyConfig:
        names = self.calibration.names
        return SafetyConfig(
            action_low=self.calibration.low,
            action_high=self.calibration.high,
            gripper_index=self.gripper_index,
            max_velocity=np.full(len(names), self.max_velocity_rad_s),
        )
