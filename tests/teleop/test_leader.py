"""Leader → follower on two emulated STS3215 buses (two pseudo-terminals, feetech-servo-sdk)."""

import numpy as np
import pytest

from embodied_mm.errors import UsageError
from embodied_mm.runtime.adapters.feetech import FeetechRobot
from embodied_mm.runtime.feetech import control_table as ct
from embodied_mm.runtime.feetech.calibration import (
    JOINT_NAMES,
    RAD_PER_TICK,
    Calibration,
    JointCalibration,
)
from embodied_mm.runtime.feetech.emulator import FeetechBusEmulator
from embodied_mm.runtime.safety import EStop, Intervention, SafetyFilter
from embodied_mm.teleop.control import teleop_step
from embodied_mm.teleop.leader import feetech_leader

IDS = list(range(1, 7))
HZ = 30.0
INVERTED_ON_LEADER = 2  # shoulder_lift: the leader's servo is mounted the other way round


def calibration(offsets: dict[int, int], inverted: int | None, gripper_span: int) -> Calibration:
    joints = []
    for name, i in zip(JOINT_NAMES, IDS, strict=True):
        span = gripper_span if name == "gripper" else 1000
        joints.append(
            JointCalibration(name, i, offsets[i], 2048 - span, 2048 + span, int(i == inverted))
        )
    return Calibration("so101", joints)


@pytest.fixture
def rig(tmp_path):
    """(leader emulator, leader, follower emulator, follower, safety filter), connected."""
    leader_cal = calibration({i: 30 * i for i in IDS}, INVERTED_ON_LEADER, gripper_span=400)
    follower_cal = calibration({i: -20 * i for i in IDS}, None, gripper_span=800)
    path = tmp_path / "leader.json"
    leader_cal.save(path)
    with FeetechBusEmulator(IDS) as leader_emu, FeetechBusEmulator(IDS) as follower_emu:
        # both arms in their middle pose: encoder = offset + 2048
        leader_emu.set_positions({i: 2048 + 30 * i for i in IDS})
        follower_emu.set_positions({i: (2048 - 20 * i) % 4096 for i in IDS})
        follower = FeetechRobot(follower_emu.port, follower_cal)
        leader = feetech_leader(leader_emu.port, path)
        follower.connect()
        leader.connect()
        try:
            leader.attach(follower)
            safety = SafetyFilter(follower.default_safety(), HZ, estop=EStop())
            yield leader_emu, leader, follower_emu, follower, safety
        finally:
            leader.disconnect()
            follower.disconnect()


def move_leader(emu, rad: np.ndarray, cal: Calibration) -> None:
    """Turn the leader's joints by hand to these calibrated radians."""
    ticks = cal.to_ticks(rad)
    emu.set_positions({i: t + cal.joints[i - 1].homing_offset for i, t in ticks.items()})


def test_the_follower_tracks_the_leader_including_an_inverted_joint(rig):
    leader_emu, leader, follower_emu, follower, safety = rig
    for m in leader_emu.motors.values():  # the file's calibration is now in the leader
        assert m.get(ct.HOMING_OFFSET) == 30 * m.motor_id and not m.torque
    pose = np.array([0.4, -0.5, 0.3, -0.2, 0.6, 0.0])
    leader_span = 400 * RAD_PER_TICK
    pose[5] = leader_span  # leader gripper fully closed (the top of its range)
    move_leader(leader_emu, pose, leader.calibration)
    # the inverted leader joint: negative radians are *more* ticks on its servo
    assert leader_emu.motors[2].present > 2048
    for _ in range(int(HZ * 1.0)):  # 1 s: the rate limit (1.5 rad/s) covers 0.6 rad
        step = teleop_step(follower, leader, safety)
    assert not step.filtered.stop
    state = follower.read_joints()
    np.testing.assert_allclose(state[:5], pose[:5], atol=2 * RAD_PER_TICK)
    # gripper: the leader's range end maps to the follower's (800 ticks, not 400)
    np.testing.assert_allclose(state[5], 800 * RAD_PER_TICK, atol=2 * RAD_PER_TICK)
    assert follower_emu.motors[2].present < 2048  # the follower's servo is not inverted


def test_a_leader_jump_is_rate_limited_not_followed(rig):
    leader_emu, leader, _, follower, safety = rig
    teleop_step(follower, leader, safety)
    before = follower.read_joints()
    move_leader(leader_emu, np.array([1.5, 0, 0, 0, 0, 0]), leader.calibration)  # a jump
    sent = []
    for _ in range(5):
        sent.append(teleop_step(follower, leader, safety).filtered)
    per_step = 1.5 / HZ  # max_velocity / hz
    first = sent[0].action
    assert Intervention.MAX_DELTA in sent[0].interventions
    np.testing.assert_allclose(first[0], before[0] + per_step, atol=1e-9)
    np.testing.assert_allclose(
        follower.read_joints()[0], before[0] + 5 * per_step, atol=2 * RAD_PER_TICK
    )


def test_a_silent_leader_holds_the_follower_then_stops(rig):
    leader_emu, leader, follower_emu, follower, safety = rig
    safety.config.watchdog_stop_s = 0.0  # stop at the first step without a reading
    teleop_step(follower, leader, safety)
    held = follower.read_joints()
    leader_emu.silence(3)  # a cable pulled
    step = teleop_step(follower, leader, safety)
    assert step.command.action is None and leader.read_errors == 1
    assert step.filtered.stop and Intervention.WATCHDOG_STOP in step.filtered.interventions
    np.testing.assert_allclose(follower.read_joints(), held, atol=RAD_PER_TICK)
    assert all(m.torque for m in follower_emu.motors.values())  # held, not limp


def test_a_leader_of_another_arm_is_refused(rig):
    _, leader, _, follower, _ = rig
    leader.calibration.joints[0].name = "waist"
    with pytest.raises(UsageError, match="leader leader:so101 has joints"):
        leader.attach(follower)


def test_a_dynamixel_leader_drives_a_koch_follower(tmp_path, monkeypatch):
    """The Dynamixel path: software calibration (offset, direction), a reversed leader joint."""
    from embodied_mm.runtime.adapters.dynamixel import DynamixelRobot
    from embodied_mm.runtime.dynamixel import calibration as dxl
    from embodied_mm.runtime.dynamixel.emulator import MotorBusEmulator
    from embodied_mm.teleop.leader import dynamixel_leader

    profile = dxl.get_profile("koch")

    def koch(direction_of: dict[int, int], offset: int) -> dxl.Calibration:
        return dxl.Calibration(
            "koch",
            [
                dxl.JointCalibration(
                    j.name,
                    j.motor_id,
                    offset,
                    direction_of.get(j.motor_id, 1),
                    j.nominal_min,
                    j.nominal_max,
                )
                for j in profile.joints
            ],
        )

    leader_cal, follower_cal = koch({3: -1}, 1000), koch({}, 3000)
    path = tmp_path / "koch_leader.json"
    leader_cal.save(path)
    ids = leader_cal.ids
    with MotorBusEmulator(ids) as leader_emu, MotorBusEmulator(ids) as follower_emu:
        leader_emu.set_positions({i: 1000 for i in ids})
        follower_emu.set_positions({i: 3000 for i in ids})
        follower = DynamixelRobot(follower_emu.port, follower_cal)
        leader = dynamixel_leader(str(leader_emu.port), path)
        follower.connect()
        leader.connect()
        try:
            leader.config.rescale_gripper = False  # same gripper on both arms
            leader.attach(follower)
            pose = np.array([0.3, -0.2, 0.4, 0.1, -0.3, 0.5])
            leader_emu.set_positions(leader_cal.to_ticks(pose))
            assert leader_emu.motors[3].present < 1000  # the reversed joint
            safety = SafetyFilter(follower.default_safety(), HZ)
            for _ in range(int(HZ)):
                teleop_step(follower, leader, safety)
            np.testing.assert_allclose(follower.read_joints(), pose, atol=2 * dxl.RAD_PER_TICK)
            assert all(not m.torque for m in leader_emu.motors.values())  # moved by hand
        finally:
            leader.disconnect()
            follower.disconnect()
