"""An SO-100/SO-101 arm on a Feetech STS3215 bus, plus OpenCV cameras.

Six joints (shoulder_pan, shoulder_lift, elbow_flex, wrist_flex, wrist_roll, gripper), radians
in and out through the calibration file (:mod:`embodied_mm.runtime.feetech.calibration`).
Connecting checks that every servo is an STS3215 in position mode and holds the file's homing
offset and position limits; a servo that does not is written, only while its torque is off (writing
EEPROM turns torque off, which would drop a held arm), else connecting fails with an error
naming it. Every stop leaves the arm holding with torque on
(see :mod:`embodied_mm.runtime.adapters.servo_arm`).
"""

from __future__ import annotations

import logging

from embodied_mm.runtime.adapters.opencv_camera import OpenCVCamera
from embodied_mm.runtime.adapters.servo_arm import ServoArmRobot
from embodied_mm.runtime.feetech.bus import BusError, FeetechBus
from embodied_mm.runtime.feetech.calibration import Calibration, get_profile
from embodied_mm.runtime.feetech.control_table import (
    ACCELERATION,
    MODEL_NUMBER,
    OPERATING_MODE,
    P_COEFFICIENT,
    POSITION_MODE,
    STS3215_MODEL,
    TORQUE_ENABLE,
)

log = logging.getLogger(__name__)


class FeetechRobot(ServoArmRobot):
    bus: FeetechBus
    calibration: Calibration

    def __init__(
        self,
        port: str,
        calibration: Calibration,
        cameras: dict[str, OpenCVCamera] | None = None,
        baudrate: int = 1_000_000,
        max_velocity_rad_s: float = 1.5,
        release_on_disconnect: bool = False,
        p_coefficient: int = 16,
        acceleration: int = 254,
    ) -> None:
        """``p_coefficient``: the servos' position gain (the factory's 32 makes an SO-101
        shake; 16 is what LeRobot uses); ``acceleration``: 0..254 (254: the fastest ramp).
        ``release_on_disconnect``: turn torque off in :meth:`disconnect` (the arm falls)."""
        names = {j.motor_id: j.name for j in calibration.joints}
        super().__init__(
            calibration.robot,
            FeetechBus(port, baudrate, motor_names=names),
            calibration,
            get_profile(calibration.robot).gripper,
            cameras,
            max_velocity_rad_s,
            release_on_disconnect,
        )
        self.p_coefficient = p_coefficient
        self.acceleration = acceleration

    def _prepare_motors(self) -> None:
        for joint in self.calibration.joints:
            i = joint.motor_id
            model = self.bus.read(i, MODEL_NUMBER)
            if model != STS3215_MODEL:
                raise BusError(
                    f"{self.bus.motor(i)} is model {model}, not an STS3215 ({STS3215_MODEL})"
                )
            wanted = {
                **joint.registers(),
                OPERATING_MODE: POSITION_MODE,
                P_COEFFICIENT: self.p_coefficient,
            }
            held = {reg: self.bus.read(i, reg) for reg in wanted}
            differ = {reg: v for reg, v in wanted.items() if held[reg] != v}
            if differ and self.bus.read(i, TORQUE_ENABLE):
                if set(differ) == {P_COEFFICIENT}:  # a gain, not a frame: keep it for now
                    log.warning(
                        "%s keeps P_Coefficient %d (torque is on)",
                        self.bus.motor(i),
                        held[P_COEFFICIENT],
                    )
                    differ = {}
                else:
                    listed = ", ".join(f"{r.name} {held[r]} (file: {v})" for r, v in differ.items())
                    raise BusError(
                        f"{self.bus.motor(i)} has torque on and holds {listed}; writing the "
                        "calibration would let it go limp. Support the arm, power-cycle it (or "
                        "run once with --release-on-exit), then connect again"
                    )
            if differ:
                log.info("writing calibration to %s: %s", self.bus.motor(i), differ)
                self.bus.write_eeprom(i, differ)
            self.bus.write(i, ACCELERATION, self.acceleration)
