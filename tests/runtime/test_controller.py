"""The controller (executor + safety filter) in simulated time, and the unpaced loop."""

import time

import numpy as np
import pytest

from embodied_mm.errors import UsageError
from embodied_mm.features import OBS_STATE
from embodied_mm.runtime.adapters.sim import SimRobot
from embodied_mm.runtime.chunking import OpenLoopExecutor
from embodied_mm.runtime.controller import (
    Controller,
    ControlSpec,
    StepClock,
    robot_sim_controller,
    sim_controller,
)
from embodied_mm.runtime.inference import ChunkResult, LocalPolicy, PolicyUnavailable
from embodied_mm.runtime.loop import ControllerLoop
from embodied_mm.runtime.safety import SafetyConfig, SafetyFilter

LIMITS = SafetyConfig(action_low=[-1.0] * 2, action_high=[1.0] * 2, watchdog_stop_s=0.2)
HOLD = np.zeros(2)


class Down:
    """A policy server that never answers."""

    def infer(self, frame):
        time.sleep(0.05)  # wall time passes; simulated time must not care
        raise PolicyUnavailable("server down")

    def reset(self):
        pass


class Wild:
    """Chunks whose first dimension is 3, outside the [-1, 1] limits."""

    def infer(self, frame):
        return ChunkResult(np.tile([3.0, 0.5], (4, 1)))

    def reset(self):
        pass


def test_watchdog_counts_simulated_steps_not_wall_time():
    """At 20 Hz a 0.2 s watchdog stops at step 5 (t = 0.25 s) however long inference takes."""
    ctl = sim_controller(ControlSpec("open_loop", hz=20.0), Down(), LIMITS, None)
    ctl.reset()
    kinds = []
    for _ in range(6):
        _, safe = ctl.step({OBS_STATE: np.zeros(2)}, HOLD)
        kinds.append([i.value for i in safe.interventions])
        if safe.stop:
            break
    assert kinds == [["watchdog_hold"]] * 5 + [["watchdog_stop"]]
    assert ctl.interventions == {"watchdog_hold": 5, "watchdog_stop": 1}


def test_simulated_time_ignores_camera_stamps_and_reset_starts_a_new_episode():
    ctl = sim_controller(ControlSpec("open_loop"), Wild(), LIMITS, None)
    ctl.reset()
    # a frame stamped an hour ago would be stale on a robot; a simulated frame never is
    raw, safe = ctl.step({}, HOLD, stamps={"front": -3600.0})
    np.testing.assert_array_equal(raw, [3.0, 0.5])
    np.testing.assert_array_equal(safe.action, [1.0, 0.5])
    assert ctl.interventions == {"joint_limit": 1}
    assert ctl.safety.clock() == pytest.approx(0.05)
    ctl.reset()
    assert ctl.interventions == {} and ctl.safety.clock() == 0.0 and ctl.executor.step == 0


def test_wall_time_controller_checks_stamps():
    clock = [10.0]
    safety = SafetyFilter(LIMITS, 20.0, clock=lambda: clock[0])
    ctl = Controller(OpenLoopExecutor(Wild()), safety)
    assert not ctl.simulated_time
    _, safe = ctl.step({}, HOLD, stamps={"front": 9.0})  # 1 s old
    assert [i.value for i in safe.interventions] == ["stale_observation"]


def test_step_clock_and_spec_validate():
    clock = StepClock(50.0)
    clock.tick()
    clock.tick()
    assert clock() == pytest.approx(0.04)
    with pytest.raises(ValueError, match="hz must be positive"):
        StepClock(0)
    with pytest.raises(UsageError, match="unknown execution mode 'fast'; known: open_loop"):
        ControlSpec("fast")
    with pytest.raises(UsageError, match="hz must be a finite number > 0"):
        ControlSpec(hz=float("nan"))
    with pytest.raises(UsageError, match="n_action_steps applies to mode open_loop"):
        ControlSpec("async", n_action_steps=2)
    with pytest.raises(UsageError, match="latency_steps must be >= 0"):
        ControlSpec("ensemble", latency_steps=-1)


def test_control_spec_latency_defaults_per_mode():
    """async and rtc answer within a control period by default; the synchronous modes take
    no simulated time unless told, so their recorded settings stay as they were."""
    assert ControlSpec("async").latency == 1 and ControlSpec("rtc").latency == 1
    assert ControlSpec("open_loop").latency == 0 and ControlSpec("ensemble").latency == 0
    assert "latency_steps" not in ControlSpec("open_loop").as_dict()
    assert ControlSpec("ensemble", latency_steps=4).as_dict()["latency_steps"] == 4
    assert ControlSpec("async", latency_steps=0).as_dict()["latency_steps"] == 0


def test_unpaced_loop_runs_steps_back_to_back(tiny_policy):
    """``paced=False`` (rollout, demo): 10 steps at a nominal 1 Hz take far less than 10 s."""
    robot = SimRobot("reach", engine="mujoco", seed=0)
    with robot:
        ctl = robot_sim_controller(ControlSpec(hz=1.0), LocalPolicy(tiny_policy), robot)
        ctl.reset()
        loop = ControllerLoop(robot, ctl.executor, ctl.safety, 1.0, paced=False)
        t0 = time.perf_counter()
        result = loop.run(10)
        elapsed = time.perf_counter() - t0
    assert result.steps == 10 and result.stop_reason == "max_steps"
    assert elapsed < 5.0  # paced, it would take 9 s
    assert loop.last_sent is not None and loop.last_sent.shape == (7,)
