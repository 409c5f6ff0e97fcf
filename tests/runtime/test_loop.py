"""The controller loop with real parts: sim robot, tiny policy, safety filter, recorder."""

import dataclasses
import json
import time

import cv2
import numpy as np
import pytest

from embodied_mm.runtime.adapters.sim import SimRobot
from embodied_mm.runtime.chunking import AsyncExecutor, OpenLoopExecutor, TemporalEnsembleExecutor
from embodied_mm.runtime.inference import LocalPolicy
from embodied_mm.runtime.loop import ControllerLoop
from embodied_mm.runtime.recording import RunRecorder
from embodied_mm.runtime.safety import SafetyFilter
from embodied_mm.runtime.timing import STAGES


@pytest.fixture(scope="module")
def sim():
    robot = SimRobot("reach", engine="mujoco", seed=0)
    robot.connect()
    yield robot
    robot.disconnect()


@pytest.mark.parametrize(
    "executor_cls", [OpenLoopExecutor, TemporalEnsembleExecutor, AsyncExecutor]
)
def test_runs_each_mode_and_times_every_stage(sim, tiny_policy, executor_cls, tmp_path):
    sim.reset_episode(seed=1)
    executor = executor_cls(LocalPolicy(tiny_policy))
    safety = SafetyFilter(sim.default_safety(), 50.0, sim.ee_position_fn())
    recorder = RunRecorder(tmp_path, camera="front", fps=50)
    loop = ControllerLoop(sim, executor, safety, hz=50.0, recorder=recorder)
    try:
        result = loop.run(max_steps=12)
    finally:
        executor.close()
        recorder.close()
    assert result.steps == 12 and result.stop_reason == "max_steps" and result.error is None
    for stage in STAGES:  # every stage ran each step (its times: the fake-clock tests below)
        assert np.isfinite(result.timing[f"{stage}_p50_ms"]), stage
    lines = [json.loads(line) for line in (tmp_path / "run.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == list(range(12))
    assert all(len(r["action"]) == 7 and set(r["stage_ms"]) >= set(STAGES) for r in lines)
    fresh = [r["raw_action"] is not None for r in lines]
    if executor_cls is AsyncExecutor:
        # step 0 waits for the first chunk; later steps play whatever has arrived, and how
        # often the queue runs dry depends on machine load (bench deploy measures that)
        assert fresh[0]
    else:
        assert all(fresh)  # synchronous modes always have an action
    cap = cv2.VideoCapture(str(tmp_path / "front.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 12
    cap.release()


class FakeClock:
    """Seconds that move only when a stage advances them: stage times are exact."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def run_with_observe_times(sim, policy, observe_ms: list[float], hz: float):
    """The loop on ``sim`` (unpaced, on a fake clock) where step i's observation takes
    ``observe_ms[i]`` and nothing else takes any time."""
    clock = FakeClock()
    durations = iter(observe_ms)
    real_observe = sim.get_observation

    def slow_observe():
        clock.now += next(durations) / 1e3
        return real_observe()

    sim.reset_episode(seed=5)
    sim.get_observation = slow_observe
    executor = OpenLoopExecutor(LocalPolicy(policy))
    safety = SafetyFilter(sim.default_safety(), hz, sim.ee_position_fn())
    try:
        loop = ControllerLoop(sim, executor, safety, hz, paced=False, clock=clock)
        return loop.run(max_steps=len(observe_ms))
    finally:
        del sim.get_observation
        executor.close()


def test_stage_times_and_deadline_misses_are_what_the_stages_took(sim, tiny_policy):
    """At 50 Hz (a 20 ms budget) steps whose observation takes 30 ms miss, 10 ms ones do not;
    each stage's time is what it took on the loop's clock."""
    observe_ms = [10.0, 30.0] * 4 + [30.0, 30.0]  # 10 steps, 6 of them over 20 ms
    result = run_with_observe_times(sim, tiny_policy, observe_ms, hz=50.0)
    assert result.steps == 10 and result.timing["deadline_misses"] == 6
    assert result.timing["observe_p50_ms"] == pytest.approx(30.0, abs=1e-6)
    assert result.timing["step_p50_ms"] == pytest.approx(30.0, abs=1e-6)
    for stage in ("preprocess", "infer", "postprocess", "act"):
        assert result.timing[f"{stage}_p99_ms"] == 0.0, stage


def test_steps_within_the_period_miss_no_deadline(sim, tiny_policy):
    result = run_with_observe_times(sim, tiny_policy, [19.0] * 6, hz=50.0)
    assert result.steps == 6 and result.timing["deadline_misses"] == 0
    assert result.timing["step_p99_ms"] == pytest.approx(19.0, abs=1e-6)


def test_a_real_slow_stage_misses_every_deadline(sim, tiny_policy):
    """On the real clock: an observation that sleeps two periods overruns every step (a sleep
    never returns early), and its time is at least the sleep."""
    sim.reset_episode(seed=6)
    real_observe = sim.get_observation
    sim.get_observation = lambda: (time.sleep(0.04), real_observe())[1]
    executor = OpenLoopExecutor(LocalPolicy(tiny_policy))
    safety = SafetyFilter(sim.default_safety(), 50.0, sim.ee_position_fn())
    try:
        result = ControllerLoop(sim, executor, safety, 50.0).run(max_steps=5)
    finally:
        del sim.get_observation
        executor.close()
    assert result.steps == 5 and result.timing["deadline_misses"] == 5
    assert result.timing["observe_p50_ms"] >= 40.0


def test_estop_api_mid_run_holds_and_ends(sim, tiny_policy):
    sim.reset_episode(seed=2)
    executor = OpenLoopExecutor(LocalPolicy(tiny_policy))
    safety = SafetyFilter(sim.default_safety(), 50.0, sim.ee_position_fn())
    sent = []
    original_send = sim.send_action

    def on_step(step, loop):
        if step == 3:
            safety.estop.trigger("test operator")

    sim.send_action = lambda a: (sent.append(np.array(a)), original_send(a))[1]
    try:
        result = ControllerLoop(sim, executor, safety, 50.0, on_step=on_step).run(20)
    finally:
        del sim.send_action
    assert result.stop_reason == "estop" and result.steps == 4
    assert result.interventions["estop"] == 1
    np.testing.assert_array_equal(sent[-1][:6], np.zeros(6))  # the safe stop is a hold


def test_episode_end_stops_the_loop(tiny_policy):
    robot = SimRobot("reach", engine="mujoco", seed=0, max_episode_steps=5)
    with robot:
        executor = OpenLoopExecutor(LocalPolicy(tiny_policy))
        safety = SafetyFilter(robot.default_safety(), 100.0, robot.ee_position_fn())
        result = ControllerLoop(robot, executor, safety, 100.0).run(50)
    assert result.stop_reason == "episode_done" and result.steps == 5
    assert result.success is False


@pytest.fixture(scope="module")
def arm_policy():
    """The tiny recipe sized for a 6-motor arm with one camera."""
    from embodied_mm.policies import make_policy

    policy = make_policy("vla-chunk", size="tiny", cameras=["front"], state_dim=6, action_dim=6)
    policy.eval()
    return policy


def write_clip(path, n=30):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30, (128, 128))
    for i in range(n):
        writer.write(np.full((128, 128, 3), 8 * i, np.uint8))
    writer.release()


def koch_cal():
    from embodied_mm.runtime.dynamixel.calibration import Calibration, JointCalibration

    joints = [JointCalibration(f"j{i}", i, 2048, 1, -0.5, 0.5) for i in range(1, 7)]
    return Calibration("koch", joints)


def test_real_arm_path_and_motor_fault(arm_policy, tmp_path):
    """Emulated Koch arm + a video-file camera + the tiny recipe sized for the arm: the loop
    drives the motors; a motor overload mid-run ends the run with the arm held."""
    from embodied_mm.runtime.adapters.dynamixel import DynamixelRobot
    from embodied_mm.runtime.adapters.opencv_camera import OpenCVCamera
    from embodied_mm.runtime.dynamixel.emulator import MotorBusEmulator

    video = tmp_path / "cam.mp4"
    write_clip(video)
    with MotorBusEmulator(list(range(1, 7))) as emu:
        robot = DynamixelRobot(emu.port, koch_cal(), {"front": OpenCVCamera(str(video), fps=30)})
        with robot:
            executor = OpenLoopExecutor(LocalPolicy(arm_policy))
            safety = SafetyFilter(robot.default_safety(), 30.0)
            moved = {"goal": None}

            def on_step(step, loop):
                if step == 5:
                    moved["goal"] = [m.goal for m in emu.motors.values()]
                    emu.set_hardware_error(3, 0x20)

            result = ControllerLoop(
                robot, executor, safety, 30.0, task="wave", on_step=on_step
            ).run(30)
    assert result.stop_reason == "error" and "motor 3: overload" in result.error
    assert result.steps == 5
    assert all(abs(g - 2048) <= 0.5 / (2 * np.pi / 4096) + 1 for g in moved["goal"])  # in limits


def test_plan_text_is_logged_with_every_step(sim, tiny_policy, tmp_path):
    sim.reset_episode(seed=4)
    executor = OpenLoopExecutor(LocalPolicy(tiny_policy, with_plan=True), n_action_steps=2)
    safety = SafetyFilter(sim.default_safety(), 50.0, sim.ee_position_fn())
    recorder = RunRecorder(tmp_path)
    try:
        result = ControllerLoop(sim, executor, safety, 50.0, recorder=recorder).run(4)
    finally:
        recorder.close()
    lines = [json.loads(line) for line in (tmp_path / "run.jsonl").read_text().splitlines()]
    assert all(isinstance(r["plan"], str) for r in lines)  # the (random) model's sub-task text
    assert {r["plan"] for r in lines if r["plan"]} == set(result.plans)


def test_camera_dropout_makes_the_arm_hold(arm_policy, tmp_path):
    """The camera's source disappears: frames go stale and every command becomes a hold."""
    from embodied_mm.runtime.adapters.dynamixel import DynamixelRobot
    from embodied_mm.runtime.adapters.opencv_camera import OpenCVCamera
    from embodied_mm.runtime.dynamixel.emulator import MotorBusEmulator

    video = tmp_path / "cam.mp4"
    write_clip(video, n=10)
    camera = OpenCVCamera(str(video), fps=30, reconnect_backoff_s=0.01)
    with MotorBusEmulator(list(range(1, 7))) as emu:
        robot = DynamixelRobot(emu.port, koch_cal(), {"front": camera})
        with robot:

            def run(steps, max_obs_age_s):
                cfg = dataclasses.replace(robot.default_safety(), max_obs_age_s=max_obs_age_s)
                executor = OpenLoopExecutor(LocalPolicy(arm_policy))
                loop = ControllerLoop(robot, executor, SafetyFilter(cfg, 30.0), 30.0, "wave")
                return loop.run(steps)

            def goals() -> list[int]:
                # a SYNC WRITE gets no answer: a read's round trip makes sure the emulator has
                # applied the last one before its memory is looked at
                robot.read_joints()
                return [m.goal for m in emu.motors.values()]

            fresh = run(3, max_obs_age_s=1.0)  # generous: the first inference is slow
            moved = goals()
            video.unlink()  # cable pulled: the camera keeps retrying, no new frames
            # wait until the frames already decoded run out and a reconnect has failed (on a
            # loaded machine this takes longer than the clip), then until the last is stale
            deadline = time.monotonic() + 20
            while camera.failed_reads < 1 and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(0.3)
            stale = run(5, max_obs_age_s=0.15)
            held = goals()
    assert "stale_observation" not in fresh.interventions and moved != [2048] * 6
    assert stale.interventions == {"stale_observation": 5}
    assert held == moved  # the arm did not move while it could not see
    assert camera.failed_reads >= 1


def test_an_engaged_estop_skips_inference(sim, tiny_policy, tmp_path):
    """The e-stop pressed during a step is acted on at the next one without running the
    policy first (an inference can take up to the server timeout)."""
    sim.reset_episode(seed=5)
    executor = TemporalEnsembleExecutor(LocalPolicy(tiny_policy))  # infers every step
    safety = SafetyFilter(sim.default_safety(), 50.0, sim.ee_position_fn())
    recorder = RunRecorder(tmp_path)
    events: list[str] = []

    def press_at_step_3(step, loop):
        if step == 3:
            safety.estop.trigger("operator")

    loop = ControllerLoop(
        sim, executor, safety, 50.0, recorder=recorder, on_step=press_at_step_3,
        on_event=events.append,
    )  # fmt: skip
    try:
        result = loop.run(20)
    finally:
        recorder.close()
    assert result.stop_reason == "estop" and result.steps == 4
    assert executor.step == 3  # steps 0-2 ran the policy, the e-stop step did not
    last = json.loads((tmp_path / "run.jsonl").read_text().splitlines()[-1])
    assert last["interventions"] == ["estop"] and last["raw_action"] is None
    assert events == ["e-stop (operator) at step 3: the robot is holding where it is"]


def test_watchdog_hold_keeps_the_grip_when_the_policy_server_goes(tmp_path):
    """A gripper closed on an object stops short of its target; when the policy server
    disappears, the watchdog holds keep squeezing (goal = last target, not the blocked
    position), the operator is told at once, and the arm stays powered after the stop."""
    from embodied_mm.deploy.client import PolicyClient, RemotePolicy
    from embodied_mm.deploy.server import PolicyServer, ServerThread
    from embodied_mm.runtime.adapters.dynamixel import DynamixelRobot
    from embodied_mm.runtime.adapters.opencv_camera import OpenCVCamera
    from embodied_mm.runtime.dynamixel.emulator import MotorBusEmulator
    from tests.runtime import steady_arm

    camera = OpenCVCamera(str(steady_arm.write_clip(tmp_path / "cam.mp4")), fps=30)
    server = ServerThread(PolicyServer(LocalPolicy(steady_arm.steady_policy()), "127.0.0.1", 0))
    events: list[str] = []
    hold_goals: list[int] = []
    running = [server.__enter__()]  # stopped mid-run below, like a crashed server

    def stop_server():
        if running:
            running.pop().__exit__(None, None, None)

    try:
        with MotorBusEmulator(steady_arm.IDS) as emu:
            emu.block(6, steady_arm.ticks(steady_arm.OBJECT_RAD))
            client = PolicyClient(server.url, timeout_s=2.0, connect_timeout_s=0.5)
            robot = DynamixelRobot(emu.port, steady_arm.calibration(), {"front": camera})
            with robot:
                cfg = dataclasses.replace(robot.default_safety(), watchdog_stop_s=0.5)
                safety = SafetyFilter(cfg, 20.0)
                executor = OpenLoopExecutor(RemotePolicy(client))  # a new chunk every 8 steps

                def on_step(step, loop):
                    if step == 6:  # the gripper has closed on the object; next chunk is due
                        stop_server()
                    if safety.events and safety.events[-1]["kind"] == "watchdog_hold":
                        hold_goals.append(emu.motors[6].goal)

                loop = ControllerLoop(
                    robot, executor, safety, 20.0, "grasp", on_step=on_step,
                    on_event=events.append, policy_name=f"policy server {server.url}",
                )  # fmt: skip
                result = loop.run(200)
                client.close()
            gripper, arm = emu.motors[6], [emu.motors[i] for i in steady_arm.IDS[:5]]
            torque = [m.torque for m in emu.motors.values()]
    finally:
        stop_server()
    assert result.stop_reason == "watchdog_stop", result
    assert gripper.present == steady_arm.ticks(steady_arm.OBJECT_RAD)  # the object is there
    target = steady_arm.ticks(steady_arm.TARGET[5])
    assert hold_goals and set(hold_goals) == {target}  # every hold kept squeezing
    assert gripper.goal == target and all(torque)  # and so does the arm after the stop
    assert [m.goal for m in arm] == [steady_arm.ticks(r) for r in steady_arm.TARGET[:5]]
    lost, stop = events
    assert lost.startswith(f"policy server {server.url} lost at step 8 (")
    assert lost.endswith("the robot is holding where it is; it stops after 0.5 s without an action")
    assert stop.startswith("watchdog stop (no action for 0.5 s) at step ")
