"""A real arm on a Dynamixel bus (Koch, ALOHA/ViperX, OpenManipulator-X), plus OpenCV cameras.

Joint positions in radians through the calibration file; every stop leaves the arm holding
with torque on (see :mod:`embodied_mm.runtime.adapters.servo_arm`).
"""

from __future__ import annotations

from embodied_mm.runtime.adapters.opencv_camera import OpenCVCamera
from embodied_mm.runtime.adapters.servo_arm import ServoArmRobot
from embodied_mm.runtime.dynamixel.bus import DynamixelBus
from embodied_mm.runtime.dynamixel.calibration import Calibration, get_profile


class DynamixelRobot(ServoArmRobot):
    def __init__(
        self,
        port: str,
        calibration: Calibration,
        cameras: dict[str, OpenCVCamera] | None = None,
        baudrate: int = 1_000_000,
        max_velocity_rad_s: float = 1.5,
        release_on_disconnect: bool = False,
    ) -> None:
        """``release_on_disconnect``: turn torque off in :meth:`disconnect` (the arm then falls
        under gravity); by default the arm is held with torque on."""
        super().__init__(
            f"dynamixel:{calibration.profile}",
            DynamixelBus(port, baudrate),
            calibration,
            _gripper_name(calibration),
            cameras,
            max_velocity_rad_s,
            release_on_disconnect,
        )


def _gripper_name(calibration: Calibration) -> str | None:
    """The profile's gripper joint name (None when the arm has none)."""
    try:
        return get_profile(calibration.profile).gripper
    except KeyError:  # a profile this version does not know: go by the usual joint name
        return "gripper"
