"""The SO-101 calibration flow on an emulated arm moved by hand, and the file round trip."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from embodied_mm.features import OBS_STATE
from embodied_mm.runtime.adapters.feetech import FeetechRobot
from embodied_mm.runtime.feetech import control_table as ct
from embodied_mm.runtime.feetech.bus import FeetechBus
from embodied_mm.runtime.feetech.calibration import (
    RAD_PER_TICK,
    Calibration,
    JointCalibration,
    calibrate,
    get_profile,
)
from embodied_mm.runtime.feetech.emulator import FeetechBusEmulator

PROFILE = get_profile("so101")
IDS = [i for _, i in PROFILE.joints]
# Where the person holds each joint (raw encoder ticks): the middle pose, then the two ends of
# the sweep. Joint 2's range crosses the encoder's 4095 -> 0 wrap; joint 5 is inverted.
MIDDLE = {1: 2048, 2: 60, 3: 3000, 4: 1500, 5: 2048, 6: 2300}
LOW = {1: 1048, 2: 3500, 3: 2200, 4: 1000, 5: 548, 6: 2000}  # 2: 3500 is 656 ticks below 60
HIGH = {1: 3048, 2: 700, 3: 3600, 4: 2100, 5: 3548, 6: 3300}


def run_calibration(emu: FeetechBusEmulator, inverted=("wrist_roll",)) -> tuple[Calibration, list]:
    bus = FeetechBus(emu.port, motor_names=dict((i, n) for n, i in PROFILE.joints))
    bus.open()
    emu.set_positions(MIDDLE)
    moves = iter([LOW, HIGH, MIDDLE])

    def sweep_done() -> bool:  # the person swings every joint to one end, then the other
        pose = next(moves, None)
        if pose is not None:
            emu.set_positions(pose)
        return pose is None

    prompts: list[str] = []
    try:
        cal = calibrate(bus, PROFILE, prompts.append, sweep_done, inverted, sample_period_s=0.0)
    finally:
        bus.close()
    return cal, prompts


def test_calibration_round_trip_on_an_emulated_arm(tmp_path):
    with FeetechBusEmulator(IDS) as emu:
        cal, prompts = run_calibration(emu)
        assert len(prompts) == 2 and "middle pose" in prompts[0] and "full range" in prompts[1]
        assert not any(m.torque for m in emu.motors.values())  # moved by hand: torque off
        span = {i: (HIGH[i] - LOW[i]) % 4096 for i in IDS}
        for j in cal.joints:
            i = j.motor_id
            # the middle of the range reads 2048, and the servo holds what the file says
            assert (j.range_min + j.range_max) / 2 == pytest.approx(2048, abs=0.5)
            assert j.range_max - j.range_min == span[i]
            m = emu.motors[i]
            assert m.get(ct.HOMING_OFFSET) == j.homing_offset and m.get(ct.LOCK) == 1
            assert (m.get(ct.MIN_POSITION_LIMIT), m.get(ct.MAX_POSITION_LIMIT)) == (
                j.range_min,
                j.range_max,
            )
        assert [j.drive_mode for j in cal.joints] == [0, 0, 0, 0, 1, 0]
        path = tmp_path / "so101.json"
        cal.save(path)
        loaded = Calibration.load(path)
        assert loaded == cal

        # the adapter reads the file back: each joint's range ends are its limits in radians
        middle_of_range = {i: (LOW[i] + span[i] // 2) % 4096 for i in IDS}
        emu.set_positions({i: (middle_of_range[i] + 200) % 4096 for i in IDS})
        robot = FeetechRobot(emu.port, loaded)
        robot.connect()
        try:
            state = robot.get_observation().frame[OBS_STATE]
            expected = np.array([200.0, 200, 200, 200, -200, 200]) * RAD_PER_TICK  # 5 inverted
            np.testing.assert_allclose(state, expected, atol=1.01 * RAD_PER_TICK)
            robot.send_action(np.full(6, 9.0))  # beyond every range: stopped at the limits
            state = robot.get_observation().frame[OBS_STATE]
            np.testing.assert_allclose(state, loaded.high, atol=1e-6)
            lows = {i: loaded.joints[k].range_min for k, i in enumerate(IDS)}
            assert emu.motors[5].present == lows[5]  # inverted: +rad is the low end in ticks
            assert emu.motors[1].present == loaded.joints[0].range_max
        finally:
            robot.disconnect()


def test_recalibrating_starts_from_cleared_offsets():
    with FeetechBusEmulator(IDS) as emu:
        first, _ = run_calibration(emu)
        second, _ = run_calibration(emu)  # the old offsets must not add up
    assert second == first


def test_a_joint_not_moved_is_an_error_and_nothing_unknown_is_inverted():
    with FeetechBusEmulator(IDS) as emu:
        bus = FeetechBus(emu.port)
        bus.open()
        try:
            steps = iter([{3: 2048 + 500}, {3: 2048 - 500}])

            def sweep_done() -> bool:
                pose = next(steps, None)
                if pose is not None:
                    emu.set_positions(pose)
                return pose is None

            with pytest.raises(ValueError, match=r"joints shoulder_pan, shoulder_lift, wrist_flex"):
                calibrate(bus, PROFILE, lambda _: None, sweep_done, sample_period_s=0.0)
            with pytest.raises(ValueError, match=r"no joint \['elbow'\] on so101"):
                calibrate(bus, PROFILE, lambda _: None, lambda: True, inverted=["elbow"])
        finally:
            bus.close()


def test_load_validates_the_file(tmp_path):
    good = Calibration("so100", [JointCalibration("gripper", 6, -12, 1000, 3000, 1)])
    good.save(tmp_path / "c.json")
    assert Calibration.load(tmp_path / "c.json") == good
    (tmp_path / "bad.json").write_text('{"robot": "so101", "joints": [{"name": "a"}]}')
    with pytest.raises(ValueError, match="not a valid SO-100/SO-101 calibration file"):
        Calibration.load(tmp_path / "bad.json")
    bad = Calibration("so101", [JointCalibration("gripper", 6, 3000, 3000, 1000, 2)])
    bad.save(tmp_path / "bad2.json")
    with pytest.raises(ValueError, match=r"drive_mode must be 0 or 1.*homing_offset.*range_min"):
        Calibration.load(tmp_path / "bad2.json")
    with pytest.raises(FileNotFoundError, match="embodied-mm calibrate --robot so101"):
        Calibration.load(tmp_path / "missing.json")
    with pytest.raises(KeyError, match="known: so100, so101"):
        get_profile("koch")


@given(
    st.integers(0, 4094),
    st.integers(1, 4095),
    st.integers(0, 1),
    st.floats(0, 1),
)
def test_ticks_rad_round_trip_in_either_drive_mode(start, width, drive_mode, where):
    lo, hi = start, min(4095, start + width)
    cal = Calibration("so101", [JointCalibration("elbow_flex", 3, 0, lo, hi, drive_mode)])
    t = round(lo + where * (hi - lo))
    rad = cal.to_rad({3: t})
    assert cal.low[0] <= rad[0] <= cal.high[0]
    assert cal.to_ticks(rad) == {3: t}
    assert np.sign(rad[0]) == (1 - 2 * drive_mode) * np.sign(t - 2048)
    assert cal.to_ticks(np.array([cal.high[0] + 1.0])) == {3: lo if drive_mode else hi}
