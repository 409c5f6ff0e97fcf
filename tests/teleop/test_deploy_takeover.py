"""A person takes over a deployed policy in simulation and hands back: the shipped policy on
the PickLift sim robot, a scripted person on an SDL virtual pad read by the real
GamepadTeleop, the deploy session recording through the crash-safe dataset writer."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from embodied_mm.data.check import check_dataset
from embodied_mm.deploy.session import DeployConfig, run_episodes
from embodied_mm.errors import UsageError
from embodied_mm.features import INTERVENTION
from embodied_mm.runtime.adapters.sim import TCP_XYZ, SimRobot
from embodied_mm.runtime.inference import LocalPolicy
from embodied_mm.runtime.intervention import Takeover
from embodied_mm.runtime.safety import EStop, Intervention
from embodied_mm.teleop.config import GamepadConfig
from embodied_mm.teleop.gamepad import GamepadTeleop
from embodied_mm.teleop.virtual_gamepad import VirtualGamepad
from tests.teleop.hands import LB, LEFT_Y, RIGHT_Y, Hands, Y

REPO = Path(__file__).resolve().parents[2]
CHECKPOINT = REPO / "sim_assets" / "checkpoints" / "default"


class CountingSource:
    """The shipped policy, noting the loop step (its frame's number) of every inference."""

    def __init__(self, policy: LocalPolicy) -> None:
        self.policy, self.calls = policy, []
        self.step = 0
        self.person_shown: list[int] = []  # steps the status line said the person drives

    def infer(self, frame):
        self.calls.append(self.step)
        return self.policy.infer(frame)

    def reset(self) -> None:
        self.policy.reset()

    def metadata(self):
        return self.policy.metadata()


@pytest.fixture(scope="module")
def policy() -> LocalPolicy:
    return LocalPolicy.from_checkpoint(CHECKPOINT, device="cpu")


def frames(root: Path) -> pd.DataFrame:
    df = pd.concat(pd.read_parquet(p) for p in sorted(root.glob("data/*/*.parquet")))
    return df.sort_values("index").reset_index(drop=True)


def deploy(policy, script, out, steps, pad=None):
    """Run the deploy session with a scripted person: (results, the counting source)."""
    vpad = VirtualGamepad()
    vpad.tilt(RIGHT_Y, 0.0)
    hands = Hands(GamepadTeleop(vpad.index, pad), vpad, script)
    source = CountingSource(policy)
    robot = SimRobot("embodied_mm/PickLift-v0")
    robot.connect()
    hands.connect()
    estop = EStop()
    try:
        takeover = Takeover(hands, estop=estop)

        def count_steps(step, loop):  # after step `step - 1`
            source.step = step
            if "PERSON drives" in loop.status_line():
                source.person_shown.append(step - 1)

        config = DeployConfig(mode="open_loop", hz=20, max_steps=steps, record=out)
        results = run_episodes(robot, source, source.metadata(), config, estop,
                               on_step=count_steps, takeover=takeover)  # fmt: skip
    finally:
        hands.disconnect()
        robot.disconnect()
        vpad.close()
    return results, source


def test_an_intervention_mid_run_is_flagged_on_exactly_the_persons_frames(policy, tmp_path):
    out = tmp_path / "ds"
    script = {  # read k happens at step k - 1
        6: [lambda p: p.press(Y)],  # step 5: the person takes over (this step holds)
        7: [lambda p: p.press(Y, False)],
        9: [lambda p: p.press(LB), lambda p: p.tilt(LEFT_Y, -1.0)],  # step 8: forward
        14: [lambda p: p.press(LB, False)],  # step 13: deadman released: holds
        21: [lambda p: p.press(Y)],  # step 20: hand back to the policy
        22: [lambda p: p.press(Y, False)],
    }
    results, source = deploy(policy, script, out, steps=30)
    assert [r.stop_reason for r in results] == ["max_steps"]
    assert results[0].person_steps == 15 and results[0].takeovers == 1
    report = check_dataset(out)
    assert report.ok, report.errors
    df = frames(out)
    assert len(df) == 30
    flags = df[INTERVENTION].to_numpy()
    np.testing.assert_array_equal(np.flatnonzero(flags), np.arange(5, 20))
    action = np.stack(df["action"].to_numpy())
    np.testing.assert_array_equal(action[5:8, :6], 0)  # taking over holds; no deadman yet
    np.testing.assert_allclose(action[8:13, 0], 0.25, atol=1e-4)  # stick forward × scale
    np.testing.assert_array_equal(action[13:20, :6], 0)  # deadman released: the hold
    # the gripper stays where the policy left it (RB never touched): nothing is dropped
    assert action[4, 6] != -1.0  # (the pad's own "RB released" command)
    np.testing.assert_allclose(action[5:20, 6], action[4, 6], atol=1e-6)
    # The policy ran no inference while the person drove, and handing back at step 20 threw
    # away what was left of its chunk (8 actions from step 0: 3 were still queued): the
    # next chunk was inferred at step 20 from the observation then. (Deploy's warm-up
    # inference, before step 0, comes first.)
    assert source.calls[-3:] == [0, 20, 28] and source.calls[:-3] in ([], [0])
    assert source.person_shown == list(range(5, 20))  # the operator sees who drives


def test_with_the_deadman_released_the_robot_holds(policy, tmp_path):
    script = {
        1: [lambda p: p.press(Y)],  # the person takes over at step 0 ...
        2: [lambda p: p.press(Y, False), lambda p: p.tilt(LEFT_Y, -1.0)],  # stick, no deadman
    }
    results, _ = deploy(policy, script, tmp_path / "ds", steps=25)
    df = frames(tmp_path / "ds")
    assert (df[INTERVENTION] == 1).all()
    state = np.stack(df["observation.state"].to_numpy())
    tcp = state[:, TCP_XYZ]
    assert np.abs(tcp - tcp[0]).max() < 1e-4  # the arm did not move (metres)
    assert results[0].interventions.get(Intervention.WORKSPACE.value, 0) == 0


def test_a_persons_command_out_of_the_workspace_is_held_by_the_filter(policy, tmp_path):
    script = {
        1: [lambda p: p.press(Y)],
        2: [lambda p: p.press(Y, False), lambda p: p.press(LB), lambda p: p.tilt(RIGHT_Y, 1.0)],
    }  # z down at full tilt and full scale (4 cm a step), held: into the box's floor
    full_step = GamepadConfig(translation_scale=1.0)
    results, _ = deploy(policy, script, tmp_path / "ds", steps=40, pad=full_step)
    counts = results[0].interventions
    assert counts.get(Intervention.WORKSPACE.value, 0) > 0
    df = frames(tmp_path / "ds")
    action = np.stack(df["action"].to_numpy())
    held = action[:, 2] == 0  # a held step sends the zero delta
    assert held.sum() == counts[Intervention.WORKSPACE.value] + 1  # + the take-over step
    z = np.stack(df["observation.state"].to_numpy())[:, TCP_XYZ][:, 2]
    from embodied_mm.envs.tabletop_env import TCP_LOW

    assert z.min() >= TCP_LOW[2] - 0.01 - 1e-3  # never driven through the box's floor


def test_record_needs_a_whole_number_rate_and_resume_needs_record(tmp_path):
    with pytest.raises(UsageError, match="whole-number --hz"):
        DeployConfig(hz=12.5, record=tmp_path / "ds")
    with pytest.raises(UsageError, match="--resume continues a --record dataset"):
        DeployConfig(resume=True)


def test_next_ends_the_episode_and_stop_the_run_keeping_both(policy, tmp_path):
    A, START = 0, 7
    script = {  # reads count on across episodes: episode 1 starts at read 11
        10: [lambda p: p.press(A)],  # next, at step 9 of episode 0
        11: [lambda p: p.press(A, False)],
        16: [lambda p: p.press(START)],  # stop, at step 5 of episode 1
    }
    vpad = VirtualGamepad()
    vpad.tilt(RIGHT_Y, 0.0)
    hands = Hands(GamepadTeleop(vpad.index), vpad, script)
    robot = SimRobot("embodied_mm/PickLift-v0")
    robot.connect()
    hands.connect()
    try:
        config = DeployConfig(mode="open_loop", hz=20, max_steps=30, episodes=3,
                              record=tmp_path / "ds")  # fmt: skip
        results = run_episodes(robot, policy, policy.metadata(), config,
                               takeover=Takeover(hands))  # fmt: skip
    finally:
        hands.disconnect()
        robot.disconnect()
        vpad.close()
    assert [(r.stop_reason, r.steps) for r in results] == [("next", 10), ("stop", 6)]
    report = check_dataset(tmp_path / "ds")
    assert report.ok, report.errors
    assert report.episodes == 2 and len(frames(tmp_path / "ds")) == 16
