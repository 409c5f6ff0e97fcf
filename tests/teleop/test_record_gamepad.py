"""A scripted gamepad session in simulation: a person's hands on an SDL virtual pad, the real
GamepadTeleop reading it, record_teleop writing the dataset."""

import numpy as np
import pandas as pd

from embodied_mm.data.check import check_dataset
from embodied_mm.data.teleop_recorder import TeleopRecordConfig, record_teleop
from embodied_mm.runtime.adapters.sim import SimRobot
from embodied_mm.teleop.gamepad import GamepadTeleop
from embodied_mm.teleop.virtual_gamepad import VirtualGamepad
from tests.teleop.hands import LB, LEFT_Y, RB, RIGHT_Y, A, Hands


def test_a_gamepad_session_records_motion_only_with_the_deadman(tmp_path):
    vpad = VirtualGamepad()
    vpad.tilt(RIGHT_Y, 0.0)
    script = {
        1: [lambda p: p.tilt(LEFT_Y, -1.0)],  # stick forward, deadman not held: no motion
        6: [lambda p: p.press(LB)],  # deadman: now it moves
        11: [lambda p: p.press(RB)],  # close the gripper
        16: [lambda p: p.press(LB, False)],  # let go: holds, the gripper stays closed
        20: [lambda p: p.press(A)],  # next episode
    }
    hands = Hands(GamepadTeleop(vpad.index), vpad, script)
    robot = SimRobot("embodied_mm/PickLift-v0")
    robot.connect()
    hands.connect()
    try:
        out = tmp_path / "ds"
        config = TeleopRecordConfig(episodes=1, fps=20, episode_time_s=5.0)
        summary = record_teleop(robot, hands, out, config, say=print)
    finally:
        hands.disconnect()
        robot.disconnect()
        vpad.close()
    assert [r.end for r in summary.reports] == ["next"]
    report = check_dataset(out)
    assert report.ok, report.errors
    df = pd.read_parquet(next(out.glob("data/*/*.parquet"))).sort_values("frame_index")
    action = np.stack(df["action"].to_numpy())
    assert len(action) == 20
    np.testing.assert_array_equal(action[:5, :6], 0)  # deadman released
    np.testing.assert_allclose(action[5:15, 0], 0.25, atol=1e-4)  # held: full forward × scale
    assert (action[:10, 6] == -1).all() and (action[10:15, 6] == 1).all()
    np.testing.assert_array_equal(action[15:, :6], 0)  # released again: the arm holds
    assert (action[15:, 6] == 1).all()  # ... with the gripper at its last command
