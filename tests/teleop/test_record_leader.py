"""record_teleop on a real-arm path: an emulated SO-101 follower driven by an emulated leader,
episode controls from a second source (the keys beside the leader), a reset period."""

import threading
import time

import numpy as np
import pandas as pd
import pytest

from embodied_mm.data.check import check_dataset
from embodied_mm.data.teleop_recorder import TeleopRecordConfig, record_teleop
from embodied_mm.errors import UsageError
from embodied_mm.runtime.adapters.feetech import FeetechRobot
from embodied_mm.runtime.feetech.calibration import (
    JOINT_NAMES,
    RAD_PER_TICK,
    Calibration,
    JointCalibration,
)
from embodied_mm.runtime.feetech.emulator import FeetechBusEmulator
from embodied_mm.teleop.base import TeleopEvent
from embodied_mm.teleop.leader import feetech_leader

IDS = list(range(1, 7))
FPS = 30


def calibration() -> Calibration:
    joints = [JointCalibration(n, i, 0, 1048, 3048) for n, i in zip(JOINT_NAMES, IDS, strict=True)]
    return Calibration("so101", joints)


class Script:
    """Episode controls pressed at given polls (the recorder polls once per control step)."""

    def __init__(self, at: dict[int, TeleopEvent]) -> None:
        self.at = at
        self.polls = 0

    def __call__(self) -> list[TeleopEvent]:
        self.polls += 1
        return [self.at[self.polls]] if self.polls in self.at else []


@pytest.fixture
def arms(tmp_path):
    path = tmp_path / "leader.json"
    calibration().save(path)
    with FeetechBusEmulator(IDS) as leader_emu, FeetechBusEmulator(IDS) as follower_emu:
        follower = FeetechRobot(follower_emu.port, calibration())
        leader = feetech_leader(leader_emu.port, path)
        follower.connect()
        leader.connect()
        try:
            yield leader_emu, leader, follower
        finally:
            leader.disconnect()
            follower.disconnect()


def test_a_leader_session_records_the_followed_joints(arms, tmp_path):
    leader_emu, leader, follower = arms
    out = tmp_path / "ds"

    def person() -> None:  # moves the leader's shoulder slowly during the whole session
        for k in range(120):
            leader_emu.set_positions({1: 2048 + 2 * k})
            time.sleep(1 / FPS)

    hand = threading.Thread(target=person, daemon=True)
    hand.start()
    # episode 0: next at its 12th step; the reset period: next at its first; episode 1:
    # re-record at its 9th step, then its second take runs to the time limit (30 steps)
    script = Script({12: TeleopEvent.NEXT, 13: TeleopEvent.NEXT, 22: TeleopEvent.RERECORD})
    lines: list[str] = []
    config = TeleopRecordConfig(
        episodes=2, fps=FPS, task="wave", episode_time_s=1.0, reset_time_s=5.0
    )
    summary = record_teleop(follower, leader, out, config, controls=[script], say=lines.append)
    hand.join()
    assert summary.episodes == 2 and summary.stop_reason == "done"
    assert [r.end for r in summary.reports] == ["next", "rerecord", "time"]
    assert [r.frames for r in summary.reports] == [12, 9, 30]
    assert any("reset the scene" in line for line in lines)
    report = check_dataset(out)
    assert report.ok, report.errors
    df = pd.concat(pd.read_parquet(p) for p in out.glob("data/*/*.parquet"))
    moved = 0.0
    for _, ep in df.groupby("episode_index"):
        ep = ep.sort_values("frame_index")
        state = np.stack(ep["observation.state"].to_numpy())
        action = np.stack(ep["action"].to_numpy())
        # the follower's shoulder follows the leader's, one step behind, within a few ticks
        np.testing.assert_allclose(state[1:, 0], action[:-1, 0], atol=3 * RAD_PER_TICK)
        moved = max(moved, float(action[:, 0].max()))
    assert moved > 20 * RAD_PER_TICK
    assert 0 < summary.reports[-1].achieved_hz <= FPS * 1.05


def test_a_resumed_dataset_must_be_this_robots(arms, tmp_path):
    _, leader, follower = arms
    out = tmp_path / "ds"
    record_teleop(
        follower, leader, out, TeleopRecordConfig(1, FPS, "t", episode_time_s=0.1), say=print
    )
    with pytest.raises(UsageError, match="recorded at 30 fps, not 15"):
        record_teleop(
            follower, leader, out, TeleopRecordConfig(2, 15, "t", 0.1, resume=True), say=print
        )
    with pytest.raises(FileExistsError, match="pass --resume"):
        record_teleop(follower, leader, out, TeleopRecordConfig(2, FPS, "t", 0.1), say=print)
