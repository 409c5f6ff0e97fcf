"""Taking over a deployed SO-101 with a leader arm that is elsewhere (two emulated STS3215
buses): the follower is walked to the leader at the rate limit by the controller loop's own
safety filter, never sent there in one step."""

import numpy as np

from embodied_mm.data.episode import EpisodeBuffer
from embodied_mm.features import INTERVENTION
from embodied_mm.runtime.chunking import make_executor
from embodied_mm.runtime.intervention import Takeover
from embodied_mm.runtime.loop import ControllerLoop
from embodied_mm.runtime.safety import Intervention
from embodied_mm.teleop.base import TeleopEvent
from tests.teleop.test_leader import HZ, move_leader, rig  # noqa: F401 (the fixture)


class NotWhileThePersonDrives:
    """The policy's place in the loop: the person drives throughout, so it is never asked."""

    def infer(self, frame):
        raise AssertionError("the policy was asked for a chunk while the person drove")

    def reset(self) -> None:
        pass


def test_a_take_over_with_the_leader_elsewhere_walks_the_follower_there(rig):  # noqa: F811
    leader_emu, leader, _, follower, safety = rig
    start = follower.read_joints()
    far = np.array([1.2, 0, 0, 0, 0, 0])  # the leader was left 1.2 rad away on the pan joint
    move_leader(leader_emu, far, leader.calibration)
    presses = iter([[TeleopEvent.TAKEOVER]])  # t on the terminal at the first step
    takeover = Takeover(leader, controls=[lambda: next(presses, [])])
    episode = EpisodeBuffer()
    executor = make_executor("open_loop", NotWhileThePersonDrives())
    loop = ControllerLoop(follower, executor, safety, HZ, task="follow", paced=False,
                          takeover=takeover, episode=episode)  # fmt: skip
    result = loop.run(12)
    assert result.stop_reason == "max_steps" and result.person_steps == 12
    assert episode.extras[INTERVENTION] == [True] * 12
    pan = np.array([a[0] for a in episode.actions])  # the commands sent, step by step
    per_step = 1.5 / HZ  # the follower's max_velocity / hz
    np.testing.assert_allclose(pan[0], start[0], atol=1e-6)  # the take-over step holds
    np.testing.assert_allclose(np.diff(pan), per_step, atol=1e-6)  # then the rate limit
    assert pan[-1] < far[0] - 0.5  # 12 steps in, still far from the leader
    assert result.interventions[Intervention.MAX_DELTA.value] == 11


def test_abort_beside_the_leader_is_the_e_stop_and_the_follower_holds(rig):  # noqa: F811
    _, leader, follower_emu, follower, safety = rig
    presses = iter([[TeleopEvent.TAKEOVER], [], [TeleopEvent.ABORT]])  # t, then Ctrl-C
    takeover = Takeover(leader, controls=[lambda: next(presses, [])], estop=safety.estop)
    executor = make_executor("open_loop", NotWhileThePersonDrives())
    loop = ControllerLoop(follower, executor, safety, HZ, task="follow", paced=False,
                          takeover=takeover)  # fmt: skip
    result = loop.run(20)
    assert result.stop_reason == "estop" and result.steps == 3
    assert safety.estop.reason == f"abort on {leader.name}"
    assert all(m.torque for m in follower_emu.motors.values())  # held, not limp
