import math

import numpy as np
import pytest

from embodied_mm.runtime.dynamixel.bus import DynamixelBus
from embodied_mm.runtime.dynamixel.calibration import (
    Calibration,
    JointCalibration,
    calibrate,
    get_profile,
)
from embodied_mm.runtime.dynamixel.emulator import MotorBusEmulator


def test_ticks_rad_round_trip_with_offset_and_direction():
    cal = Calibration(
        "koch",
        [JointCalibration("a", 1, 2048, 1, -3, 3), JointCalibration("b", 2, 1000, -1, -3, 3)],
    )
    rad = cal.to_rad({1: 2048 + 1024, 2: 1000 + 1024})
    np.testing.assert_allclose(rad, [math.pi / 2, -math.pi / 2])
    assert cal.to_ticks(rad) == {1: 3072, 2: 2024}


def test_save_load_and_validation(tmp_path):
    cal = Calibration("koch", [JointCalibration("a", 1, 10, 1, -1.0, 1.0)])
    cal.save(tmp_path / "c.json")
    assert Calibration.load(tmp_path / "c.json") == cal
    (tmp_path / "bad.json").write_text('{"profile": "koch", "joints": [{"name": "a"}]}')
    with pytest.raises(ValueError, match="not a valid calibration file"):
        Calibration.load(tmp_path / "bad.json")
    with pytest.raises(FileNotFoundError, match="embodied-mm calibrate"):
        Calibration.load(tmp_path / "missing.json")
    with pytest.raises(KeyError, match="known: aloha-viperx, koch, openmanipulator-x"):
        get_profile("ur5")


def test_calibrate_against_emulated_arm():
    profile = get_profile("openmanipulator-x")
    ids = [j.motor_id for j in profile.joints]
    with MotorBusEmulator(ids) as emu:
        bus = DynamixelBus(emu.port)
        bus.open()
        zero = {i: 2048 + 10 * i for i in ids}
        emu.set_positions(zero)
        sweep_steps = iter(range(3))

        def sweep_done() -> bool:
            step = next(sweep_steps, None)
            if step == 0:  # the user swings joint 12 down, then up (±0.5 rad)
                emu.set_positions({12: zero[12] - 326})
            elif step == 1:
                emu.set_positions({12: zero[12] + 326})
            return step is None

        prompts = []
        cal = calibrate(
            lambda: bus.sync_read_positions(ids), profile, prompts.append, sweep_done, 0.0
        )
        bus.close()
    assert len(prompts) == 2 and "zero pose" in prompts[0]
    assert [j.offset_ticks for j in cal.joints] == [zero[i] for i in ids]
    j2 = cal.joints[1]
    assert j2.min_rad == pytest.approx(-0.5, abs=1e-3) and j2.max_rad == pytest.approx(
        0.5, abs=1e-3
    )
    j1 = cal.joints[0]  # never moved: nominal range
    assert (j1.min_rad, j1.max_rad) == (
        profile.joints[0].nominal_min,
        profile.joints[0].nominal_max,
    )
