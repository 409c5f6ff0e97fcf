"""A real arm on a Dynamixel bus (Koch, ALOHA/ViperX, OpenManipulator-X), plus OpenCV cameras.

Actions and ``observation.state`` are joint positions in radians, in the calibration file's
joint order (gripper last in every shipped profile). Connecting reads the present position
and writes it as the goal *before* enabling torque, so the arm does not jump to a stale goal.
"""

from __future__ import annotations

import logging

import numpy as np

from embodied_mm.features import ACTION, OBS_STATE, image_key
from embodied_mm.runtime.adapters.opencv_camera import OpenCVCamera
from embodied_mm.runtime.dynamixel.bus import BusError, DynamixelBus, HardwareError
from embodied_mm.runtime.dynamixel.calibration import Calibration
from embodied_mm.runtime.robot import FeatureSpec, Robot, RobotObservation, check_action
from embodied_mm.runtime.safety import SafetyConfig

log = logging.getLogger(__name__)


class DynamixelRobot(Robot):
    def __init__(
        self,
        port: str,
        calibration: Calibration,
        cameras: dict[str, OpenCVCamera] | None = None,
        baudrate: int = 1_000_000,
        max_velocity_rad_s: float = 1.5,
        disable_torque_on_disconnect: bool = True,
    ) -> None:
        super().__init__()
        self.name = f"dynamixel:{calibration.profile}"
        self.calibration = calibration
        self.bus = DynamixelBus(port, baudrate)
        self.cameras = cameras or {}
        self.max_velocity_rad_s = max_velocity_rad_s
        self.disable_torque_on_disconnect = disable_torque_on_disconnect
        self._present: np.ndarray | None = None  # (J,) rad, last read

    @property
    def observation_features(self) -> dict[str, FeatureSpec]:
        feats: dict[str, FeatureSpec] = {
            OBS_STATE: {
                "dtype": "float32",
                "shape": (len(self.calibration.joints),),
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
                "shape": (len(self.calibration.joints),),
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
            ticks = self.bus.sync_read_positions(self.calibration.ids)
            self.bus.sync_write_goals(ticks)  # goal = here, then torque on: no jump
            self.bus.set_torque(self.calibration.ids, True)
            self._present = self.calibration.to_rad(ticks)
            for cam in self.cameras.values():
                cam.connect()
        except Exception:
            self.bus.close()
            raise

    def disconnect(self) -> None:
        for cam in self.cameras.values():
            cam.disconnect()
        if not self.bus.is_open:
            return
        try:
            if self.disable_torque_on_disconnect:
                # motor by motor: one faulted motor (its firmware already cut its torque) must
                # not leave the others powered
                for i in self.calibration.ids:
                    try:
                        self.bus.set_torque([i], False)
                    except (BusError, HardwareError) as e:
                        log.warning("torque off for motor %d failed: %s", i, e)
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
        self.bus.sync_write_goals(self.calibration.to_ticks(rad))

    def hold_action(self) -> np.ndarray:
        if self._present is None:
            self.read_joints()
        assert self._present is not None
        return self._present.copy()

    def safe_stop(self) -> None:
        """Goal = the position read now, torque stays on (turning it off would drop the arm)."""
        self.send_action(np.clip(self.read_joints(), self.calibration.low, self.calibration.high))

    def default_safety(self) -> SafetyConfig:
        names = self.calibration.names
        return SafetyConfig(
            action_low=self.calibration.low,
            action_high=self.calibration.high,
            gripper_index=names.index("gripper") if "gripper" in names else None,
            max_velocity=np.full(len(names), self.max_velocity_rad_s),
        )
