"""The per-episode cadence report: rate, cycles over budget, ms per stage, RTC delays."""

import re
import time

import pytest
import torch

from embodied_mm.policies import make_policy
from embodied_mm.runtime.adapters.sim import SimRobot
from embodied_mm.runtime.cadence import cadence_report
from embodied_mm.runtime.chunking import OpenLoopExecutor
from embodied_mm.runtime.inference import LocalPolicy
from embodied_mm.runtime.loop import ControllerLoop
from embodied_mm.runtime.rtc import RTCExecutor
from embodied_mm.runtime.safety import SafetyFilter
from embodied_mm.runtime.timing import StageTimer


def test_report_of_known_timings():
    timer = StageTimer(period_s=0.05)
    for seconds in (0.01, 0.02, 0.03):
        timer.add("observe", seconds)
        timer.add("postprocess", 0.001)
    for busy in (0.04, 0.06, 0.07, 0.01):
        timer.end_step(busy)
    report = cadence_report(timer, achieved_hz=19.5)
    assert report["target_hz"] == 20.0 and report["achieved_hz"] == 19.5
    assert report["cycles"] == 4 and report["over_budget"] == 2
    assert report["stage_ms"]["observe"]["p50"] == pytest.approx(20.0)
    assert report["stage_ms"]["observe"]["mean"] == pytest.approx(20.0)
    assert report["stage_ms"]["filter"]["p99"] == pytest.approx(1.0)
    assert report["stage_ms"]["send"] is None  # never ran
    assert report["delay"] is None  # not an RTC executor


class Slow(LocalPolicy):
    def __init__(self, policy, delay_s: float) -> None:
        super().__init__(policy)
        self.delay_s = delay_s

    def infer_batch(self, frames):
        time.sleep(self.delay_s)
        return super().infer_batch(frames)


@pytest.fixture(scope="module")
def sim():
    robot = SimRobot("reach", engine="mujoco", seed=0)
    robot.connect()
    yield robot
    robot.disconnect()


def test_an_rtc_episode_reports_its_delays_in_the_summary_and_status_line(sim):
    torch.manual_seed(0)
    policy = make_policy("vla-chunk", size="tiny", head={"rtc_max_delay": 3}).eval()
    sim.reset_episode(seed=1)
    executor = RTCExecutor(Slow(policy, 0.06), hz=20.0, refill_at=4)
    safety = SafetyFilter(sim.default_safety(), 20.0, sim.ee_position_fn())
    loop = ControllerLoop(sim, executor, safety, hz=20.0)
    try:
        result = loop.run(max_steps=24)
        line = loop.status_line()
    finally:
        executor.close()
    cadence = result.cadence
    assert cadence["cycles"] == 24 and 0 <= cadence["over_budget"] <= 24
    assert cadence["achieved_hz"] == pytest.approx(result.achieved_hz, rel=1e-3)
    assert set(cadence["stage_ms"]) == {"observe", "infer", "filter", "send"}
    assert all(v is not None and v["p50"] >= 0 for v in cadence["stage_ms"].values())
    delay = cadence["delay"]
    assert delay["requests"] >= 3 and sum(delay["d_steps"].values()) == delay["requests"]
    assert len(delay["d_per_request"]) == delay["requests"]
    assert sum(delay["arrival_steps"].values()) == len(delay["arrival_per_chunk"]) >= 3
    assert all(1 <= int(d) <= 3 for d in delay["d_steps"])  # clamped to the policy's 3
    assert delay["estimate_ms"] >= 60.0  # the sleep is part of the measured time
    assert f" | d {delay['estimate_steps']} (p90 " in line
    shown = re.search(r"^step +24 \| +([\d.]+) Hz \|", line)
    assert shown is not None, line
    assert float(shown.group(1)) == pytest.approx(result.achieved_hz, rel=0.2)


def test_other_modes_have_no_delay_entry(sim, tiny_policy):
    sim.reset_episode(seed=2)
    executor = OpenLoopExecutor(LocalPolicy(tiny_policy))
    safety = SafetyFilter(sim.default_safety(), 50.0, sim.ee_position_fn())
    loop = ControllerLoop(sim, executor, safety, hz=50.0)
    result = loop.run(max_steps=3)
    assert result.cadence["delay"] is None and " | d " not in loop.status_line()
