"""Assembling a deployment from CLI-level choices: robot spec, policy source, execution mode.

``--robot`` specs:

- ``sim:<env-id>``: a simulated task (``sim:pick_lift``, or a registered Gymnasium id);
- ``dynamixel:<port>``: a Dynamixel arm (needs ``--calibration``), with ``--camera name=source``
  OpenCV cameras (USB index, RTSP URL or video file). The arm is left holding with torque on
  after the run unless ``release_on_exit`` (``--release-on-exit``) is given;
- ``so100:<port>`` / ``so101:<port>``: an SO-100/SO-101 arm on Feetech STS3215 servos (needs
  ``--calibration`` from ``embodied-mm calibrate --robot so101``), cameras and hold as above.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from embodied_mm.deploy.warmup import warm_up
from embodied_mm.errors import UsageError, require_positive
from embodied_mm.features import OBS_STATE, image_key
from embodied_mm.runtime.chunking import MODES, make_executor
from embodied_mm.runtime.command_interpolation import (
    CommandInterpolator,
    CommandStream,
    commands_per_action,
)
from embodied_mm.runtime.inference import ChunkSource
from embodied_mm.runtime.intervention import Takeover
from embodied_mm.runtime.loop import ControllerLoop, LoopResult
from embodied_mm.runtime.recording import RunRecorder
from embodied_mm.runtime.robot import Robot
from embodied_mm.runtime.safety import EStop, SafetyConfig, SafetyFilter
from embodied_mm.viz.rerun_log import RerunLog

__all__ = ["MODES", "DeployConfig", "make_executor", "make_robot", "run_episodes"]


def parse_cameras(specs: list[str], size: tuple[int, int] | None = None) -> dict[str, Any]:
    """``["front=0", "wrist=rtsp://..."]`` → named :class:`OpenCVCamera` objects."""
    from embodied_mm.runtime.adapters.opencv_camera import OpenCVCamera

    cams = {}
    for spec in specs:
        name, sep, source = spec.partition("=")
        if not sep or not name or not source:
            raise ValueError(f"camera spec {spec!r} must look like name=source (e.g. front=0)")
        cams[name] = OpenCVCamera(source, size=size)
    return cams


def make_robot(
    spec: str,
    calibration: Path | None = None,
    cameras: list[str] | None = None,
    image_size: tuple[int, int] | None = None,
    seed: int | None = 0,
    release_on_exit: bool = False,
    **sim_kwargs: Any,
) -> Robot:
    """The robot a ``--robot`` spec names (not connected yet). ``release_on_exit``: a real
    arm turns torque off when it disconnects; by default it stays powered, holding."""
    kind, sep, target = spec.partition(":")
    if not sep or not target:
        raise ValueError(
            f"robot spec {spec!r} must be sim:<env-id>, dynamixel:<port>, so100:<port> or "
            "so101:<port>"
        )
    if kind == "sim":
        from embodied_mm.runtime.adapters.sim import SimRobot

        return SimRobot(target, seed=seed, **sim_kwargs)
    if kind == "dynamixel":
        from embodied_mm.runtime.adapters.dynamixel import DynamixelRobot
        from embodied_mm.runtime.dynamixel.calibration import Calibration

        if calibration is None:
            raise ValueError(
                "a dynamixel robot needs --calibration FILE (see `embodied-mm calibrate`)"
            )
        return DynamixelRobot(
            target,
            Calibration.load(calibration),
            parse_cameras(cameras or [], image_size),
            release_on_disconnect=release_on_exit,
        )
    if kind in ("so100", "so101"):
        from embodied_mm.runtime.adapters.feetech import FeetechRobot
        from embodied_mm.runtime.feetech.calibration import Calibration as FeetechCalibration

        if calibration is None:
            raise ValueError(
                f"an {kind} robot needs --calibration FILE "
                f"(see `embodied-mm calibrate --robot {kind}`)"
            )
        cal = FeetechCalibration.load(calibration)
        if cal.robot != kind:
            raise ValueError(f"{calibration} calibrates an {cal.robot} arm, not an {kind}")
        return FeetechRobot(
            target,
            cal,
            parse_cameras(cameras or [], image_size),
            release_on_disconnect=release_on_exit,
        )
    raise ValueError(
        f"unknown robot kind {kind!r} in {spec!r}; known: sim, dynamixel, so100, so101"
    )


def check_compatible(robot: Robot, meta: dict[str, Any]) -> None:
    """The policy's cameras, state and action sizes must match the robot's features."""
    feats = robot.observation_features
    problems = [f"camera {c!r} missing" for c in meta["cameras"] if image_key(c) not in feats]
    state = feats[OBS_STATE]["shape"][0]
    if state != meta["state_dim"]:
        problems.append(f"state has {state} dims, the policy expects {meta['state_dim']}")
    if meta.get("action_dim") is not None and robot.action_dim != meta["action_dim"]:
        problems.append(
            f"robot takes {robot.action_dim}-D actions, the policy emits {meta['action_dim']}-D"
        )
    if problems:
        raise ValueError(f"policy does not fit robot {robot.name}: " + "; ".join(problems))


@dataclass
class DeployConfig:
    mode: str = "async"
    hz: float = 20.0
    max_steps: int = 400
    episodes: int = 1
    task: str | None = None
    refill_at: int = 4
    out_dir: Path | None = None
    video_camera: str | None = "front"
    # SafetyConfig fields that replace the robot's defaults (e.g. watchdog_stop_s)
    safety_overrides: dict[str, Any] = field(default_factory=dict)
    # --record: the run as a LeRobot dataset (with the intervention flags); --resume
    # continues one. Recorded sim episodes get seeds seed, seed+1, ... (after a resumed
    # dataset's last).
    record: Path | None = None
    resume: bool = False
    seed: int = 0
    # --command-hz: commands at this multiple of hz, jerk-limited between actions (real
    # position-controlled arms; runtime/command_interpolation.py), with these limits
    # (the velocity limit is the robot's safety max_velocity)
    command_hz: float | None = None
    command_max_accel: float = 20.0  # units/s²
    command_max_jerk: float = 1000.0  # units/s³

    def __post_init__(self) -> None:
        require_positive("--hz", self.hz)
        for name, value in (("--steps", self.max_steps), ("--episodes", self.episodes)):
            if value < 1:
                raise UsageError(f"{name} must be >= 1, got {value}")
        if self.refill_at < 0:
            raise UsageError(f"--refill-at must be >= 0, got {self.refill_at}")
        if self.record is not None:
            from embodied_mm.data.deploy_dataset import record_fps

            record_fps(self.hz)
        elif self.resume:
            raise UsageError("--resume continues a --record dataset: give --record DIR")
        if self.command_hz is not None:
            try:
                commands_per_action(self.command_hz, self.hz)
            except ValueError as e:
                raise UsageError(str(e)) from None
            require_positive("--command-max-accel", self.command_max_accel)
            require_positive("--command-max-jerk", self.command_max_jerk)


def command_stream(
    robot: Robot, limits: SafetyConfig, cfg: DeployConfig, estop: EStop
) -> CommandStream | None:
    """The ``--command-hz`` stream of one episode (None without it): a jerk-limited
    interpolator within ``limits``' velocity limit and a filter at the command rate."""
    if cfg.command_hz is None:
        return None
    if limits.max_velocity is None:
        raise UsageError(
            f"--command-hz interpolates absolute position actions with a velocity limit; "
            f"{robot.name}'s actions have none (delta actions?)"
        )
    interpolator = CommandInterpolator(
        robot.action_dim, cfg.hz, cfg.command_hz, limits.max_velocity,
        cfg.command_max_accel, cfg.command_max_jerk,
    )  # fmt: skip
    safety = SafetyFilter(limits, cfg.command_hz, robot.ee_position_fn(), estop)
    return CommandStream(interpolator, safety)


def run_episodes(
    robot: Robot,
    source: ChunkSource,
    meta: dict[str, Any],
    cfg: DeployConfig,
    estop: EStop | None = None,
    on_step: Callable[[int, ControllerLoop], None] | None = None,
    on_event: Callable[[str], None] | None = None,
    takeover: Takeover | None = None,
    viz: RerunLog | None = None,
) -> list[LoopResult]:
    """Run ``cfg.episodes`` episodes (the robot must be connected); stops early on an e-stop
    or a safety stop, because those need an operator. ``on_event`` receives the loop's
    operator messages (policy server lost or back, stops, episodes saved) when they happen.
    ``takeover``: a person may take over (``--teleop``, see
    :mod:`embodied_mm.runtime.intervention`); each episode starts with the policy driving.
    With ``cfg.record`` each episode is committed to that dataset as it ends. ``viz``
    (``--display rerun``) gets every step of every episode, one after the other."""
    from embodied_mm.data.deploy_dataset import DeployDataset, record_fps
    from embodied_mm.data.episode import EpisodeBuffer

    check_compatible(robot, meta)
    estop = estop or EStop()
    # before the first observation the loop acts on: its first step is then as fast as the rest
    warm = warm_up(source, robot, cfg.task, on_event)
    name = policy_name(source)
    results = []
    say = on_event or (lambda message: None)
    with ExitStack() as held:
        dataset: DeployDataset | None = None
        if cfg.record is not None:  # before the executor starts a worker thread
            dataset = held.enter_context(
                DeployDataset(cfg.record, robot, record_fps(cfg.hz), cfg.resume)
            )
        first_seed = dataset.next_seed(cfg.seed) if dataset is not None else cfg.seed
        executor = make_executor(cfg.mode, source, cfg.refill_at, hz=cfg.hz)
        held.callback(executor.close)
        for ep in range(cfg.episodes):
            seed = first_seed + ep
            if dataset is not None:  # every recorded episode has its seed
                robot.reset_episode(seed=seed)
            elif ep > 0:
                robot.reset_episode(seed=None)
            executor.reset()
            if takeover is not None:
                takeover.reset()
            buffer = EpisodeBuffer() if dataset is not None else None
            if viz is not None:
                viz.new_episode(ep)
            limits = dataclasses.replace(robot.default_safety(), **cfg.safety_overrides)
            safety = SafetyFilter(limits, cfg.hz, robot.ee_position_fn(), estop)
            recorder = None
            if cfg.out_dir is not None:
                cam = cfg.video_camera if cfg.video_camera in meta["cameras"] else None
                recorder = RunRecorder(Path(cfg.out_dir) / f"episode_{ep:03d}", cam, cfg.hz)
            loop = ControllerLoop(
                robot, executor, safety, cfg.hz, cfg.task, recorder, on_step, on_event, name,
                takeover=takeover, episode=buffer, viz=viz,
                commands=command_stream(robot, limits, cfg, estop),
            )  # fmt: skip
            said = loop.instruction()  # the env's may change every episode
            say(f"episode {ep}: {said.line()}")  # (run.jsonl's summary line keeps it too)
            result: LoopResult | None = None
            try:
                result = loop.run(cfg.max_steps)
            finally:
                if recorder is not None:
                    if result is not None:
                        recorder.log({"summary": result_dict(result)})
                    recorder.close()
            if ep == 0:  # the summary says what the warm-up took; the step statistics do not
                result.timing["policy_warmup_ms"] = warm["ms"]
            results.append(result)
            if dataset is not None and buffer is not None:
                success = bool(result.success) if result.success is not None else True
                index = dataset.commit(buffer, seed, success)
                if index is not None:
                    say(
                        f"episode {ep} saved to {cfg.record} as episode {index} "
                        f"({len(buffer)} frames, {result.person_steps} driven by the person)"
                    )
            if result.stop_reason in ("estop", "watchdog_stop", "error", "stop"):
                break
    return results


def policy_name(source: ChunkSource) -> str:
    """How operator messages name the policy: its server's URL, or "policy" in-process."""
    from embodied_mm.deploy.client import RemotePolicy

    if isinstance(source, RemotePolicy):
        return f"policy server {source.client.url}"
    return "policy"


def result_dict(r: LoopResult) -> dict[str, Any]:
    return {
        "steps": r.steps,
        "stop_reason": r.stop_reason,
        "success": r.success,
        "achieved_hz": round(r.achieved_hz, 2),
        "interventions": r.interventions,
        "timing": r.timing,
        "plans": r.plans,
        "plan_log": r.plan_log,
        **r.instruction,
        "error": r.error,
        "person_steps": r.person_steps,
        "takeovers": r.takeovers,
        "cadence": r.cadence,
    }
