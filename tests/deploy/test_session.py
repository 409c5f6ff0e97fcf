"""Assembling a deployment: robot specs, modes, policy/robot compatibility."""

import pytest

from embodied_mm.deploy.session import check_compatible, make_executor, make_robot, parse_cameras
from embodied_mm.runtime.adapters.sim import SimRobot


@pytest.mark.parametrize(
    ("spec", "kwargs", "match"),
    [
        ("pick_lift", {}, "must be sim:<env-id>, dynamixel:<port>, so100:<port> or so101:<port>"),
        ("ros:arm", {}, "unknown robot kind 'ros'.*known: sim, dynamixel, so100, so101"),
        ("dynamixel:/dev/ttyUSB0", {}, "needs --calibration"),
        (
            "so101:/dev/ttyACM0",
            {},
            r"needs --calibration FILE \(see `embodied-mm calibrate --robot so101`\)",
        ),
    ],
)
def test_bad_robot_specs(spec, kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_robot(spec, **kwargs)


def test_an_so101_needs_its_own_kind_of_calibration(tmp_path):
    from embodied_mm.runtime.adapters.feetech import FeetechRobot
    from embodied_mm.runtime.feetech.calibration import Calibration, JointCalibration
    from tests.runtime import steady_arm

    steady_arm.calibration().save(tmp_path / "koch.json")  # a Dynamixel file
    with pytest.raises(ValueError, match="not a valid SO-100/SO-101 calibration file"):
        make_robot("so101:/dev/ttyACM0", calibration=tmp_path / "koch.json")
    Calibration("so101", [JointCalibration("gripper", 6, 0, 1000, 3000)]).save(tmp_path / "s.json")
    with pytest.raises(ValueError, match="calibrates an so101 arm, not an so100"):
        make_robot("so100:/dev/ttyACM0", calibration=tmp_path / "s.json")
    robot = make_robot("so101:/dev/ttyACM0", calibration=tmp_path / "s.json", release_on_exit=True)
    assert isinstance(robot, FeetechRobot) and robot.release_on_disconnect
    assert robot.bus.port_name == "/dev/ttyACM0" and not robot.is_connected


def test_camera_specs():
    cams = parse_cameras(["front=0", "wrist=rtsp://cam/1"], size=(128, 128))
    assert cams["front"].source == 0 and cams["wrist"].source == "rtsp://cam/1"
    with pytest.raises(ValueError, match="name=source"):
        parse_cameras(["front"])


def test_unknown_mode():
    with pytest.raises(ValueError, match="known: open_loop, ensemble, async"):
        make_executor("magic", source=None)


def test_policy_must_fit_the_robot():
    with SimRobot("reach", engine="mujoco") as robot:
        check_compatible(robot, {"cameras": ["front", "wrist"], "state_dim": 15, "action_dim": 7})
        with pytest.raises(ValueError) as info:
            check_compatible(robot, {"cameras": ["top"], "state_dim": 6, "action_dim": 6})
    text = str(info.value)
    assert "camera 'top' missing" in text and "expects 6" in text and "emits 6-D" in text
