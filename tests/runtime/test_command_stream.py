"""``--command-hz`` in the controller loop, on an SO-101 over an emulated Feetech bus: five
jerk-limited commands per 20 Hz action, the action itself at its time, each command through
the command-rate safety filter (an e-stop stops the rest of a period)."""

import numpy as np
import pytest

from embodied_mm.runtime.adapters.feetech import FeetechRobot
from embodied_mm.runtime.chunking import OpenLoopExecutor
from embodied_mm.runtime.command_interpolation import CommandInterpolator, CommandStream
from embodied_mm.runtime.feetech.emulator import FeetechBusEmulator
from embodied_mm.runtime.inference import ChunkResult
from embodied_mm.runtime.loop import ControllerLoop
from embodied_mm.runtime.safety import SafetyFilter
from tests.runtime.adapters.test_feetech_robot import IDS, OFFSET, so101_calibration

HZ, COMMAND_HZ = 20.0, 100.0
V, A, J = 1.5, 10.0, 1000.0


class Trajectory:
    """Chunks of 8 actions along a smooth joint motion that starts at rest at 0."""

    def __init__(self) -> None:
        self.calls = 0

    def target(self, t: int) -> np.ndarray:
        return 0.15 * (1 - np.cos(np.pi * t / HZ)) * np.linspace(1.0, 0.5, 6)

    def infer(self, frame) -> ChunkResult:
        start = 8 * self.calls
        self.calls += 1
        return ChunkResult(np.stack([self.target(start + i) for i in range(8)]).astype(np.float32))

    def reset(self) -> None:
        self.calls = 0


@pytest.fixture
def arm():
    with FeetechBusEmulator(IDS) as emu:
        emu.set_positions({i: 2048 + OFFSET for i in IDS})  # every joint at 0 rad
        robot = FeetechRobot(emu.port, so101_calibration())
        robot.connect()
        sent: list[np.ndarray] = []
        send = robot.send_action
        robot.send_action = lambda a: (sent.append(np.array(a, dtype=np.float64)), send(a))[1]
        try:
            yield robot, sent
        finally:
            del robot.send_action
            robot.disconnect()


def loop_for(robot, source, on_step=None):
    safety = SafetyFilter(robot.default_safety(), HZ)
    commands = CommandStream(
        CommandInterpolator(6, HZ, COMMAND_HZ, V, A, J),
        SafetyFilter(robot.default_safety(), COMMAND_HZ, estop=safety.estop),
    )
    return ControllerLoop(robot, OpenLoopExecutor(source), safety, HZ, commands=commands,
                          on_step=on_step)  # fmt: skip


def test_each_action_is_the_last_of_its_five_commands_and_the_jerk_is_limited(arm):
    robot, sent = arm
    source = Trajectory()
    result = loop_for(robot, source).run(max_steps=16)
    assert result.steps == 16 and result.stop_reason == "max_steps"
    commands = np.stack(sent)  # (16 * 5, 6)
    assert commands.shape == (80, 6)
    targets = np.stack([source.target(t) for t in range(16)])
    np.testing.assert_allclose(commands[4::5], targets, atol=1e-12)  # on schedule
    jerk = np.abs(np.diff(commands, n=3, axis=0)) * COMMAND_HZ**3
    assert jerk.max() <= J * (1 + 1e-6)
    report = result.cadence["commands"]
    assert report == {"per_action": 5, "sent": 80, "late_actions": 0, "interventions": {}}


def test_an_estop_stops_the_rest_of_the_period(arm):
    robot, sent = arm

    def on_step(step, loop):
        if step == 3:
            loop.safety.estop.trigger("test operator")

    result = loop_for(robot, Trajectory(), on_step).run(max_steps=16)
    assert result.stop_reason == "estop"
    # periods 0..1 sent all five; period 2's first command met the e-stop in its filter and
    # the safe stop (one hold) went instead
    assert len(sent) == 2 * 5 + 1
    assert result.cadence["commands"]["interventions"] == {"estop": 1}
