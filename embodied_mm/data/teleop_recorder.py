"""Recording demonstrations a person drives (keyboard, gamepad, leader arm) into LeRobot v3.0.

Each episode runs at ``fps``, paced on the monotonic clock: observe, read the device, filter
through the robot's safety filter, send (:func:`~embodied_mm.teleop.control.teleop_step`), and
keep the observation with the action *sent*. A step whose work overran the period is counted
as late and the next starts at once (no burst to catch up); each episode reports its achieved
rate and late steps.

Episodes end on the time limit, a simulated episode's end, or a control: **next** (keep it),
**re-record** (drop it and record it again), **stop** (keep it and end), **abort** (Ctrl-C:
drop it, hold the robot, end). A safety stop (e-stop, the watchdog after a silent device)
drops the episode in progress and ends. Between episodes a reset period (``reset_time_s``, not
recorded; next ends it early) leaves the person time to put the scene back, the robot still
under teleoperation; simulated robots reset themselves.

Crash safety is the scripted recorder's (:mod:`embodied_mm.data.recorder`): the dataset's lock
is held throughout, and each kept episode is committed through
:class:`~embodied_mm.data.writer.DatasetWriter`, so a ``kill -9`` loses at most the episode in
progress and ``resume`` continues after the last committed one.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from embodied_mm.data import lerobot_format as fmt
from embodied_mm.data.episode import Episode, EpisodeBuffer
from embodied_mm.data.video import DEFAULT_CODEC
from embodied_mm.data.writer import DatasetWriter, refuse_to_overwrite
from embodied_mm.dirlock import exclusive_lock
from embodied_mm.errors import UsageError, require_positive
from embodied_mm.features import ACTION, OBS_IMAGES, OBS_STATE, TASK, camera_of
from embodied_mm.runtime.robot import Robot
from embodied_mm.runtime.safety import EStop, SafetyFilter
from embodied_mm.teleop.base import Teleoperator, TeleopEvent, check_fits
from embodied_mm.teleop.control import teleop_step

EventSource = Callable[[], Iterable[TeleopEvent]]


@dataclass
class TeleopRecordConfig:
    episodes: int  # the dataset should hold this many when done
    fps: int
    task: str | None = None  # None: the robot's own (a simulated task says it)
    episode_time_s: float = 60.0
    reset_time_s: float = 0.0
    resume: bool = False
    seed: int = 0  # simulated robots: the seed of the first episode, then +1
    codec: str = DEFAULT_CODEC

    def __post_init__(self) -> None:
        if self.episodes < 1:
            raise UsageError(f"--episodes must be >= 1, got {self.episodes}")
        require_positive("--fps", self.fps)
        require_positive("--episode-time-s", self.episode_time_s)
        if self.reset_time_s < 0:
            raise UsageError(f"--reset-time-s must be >= 0, got {self.reset_time_s}")


@dataclass
class EpisodeReport:
    frames: int
    end: str  # "time" | "done" | "next" | "stop" | "rerecord" | "abort" | "safety_stop"
    achieved_hz: float
    late_steps: int
    index: int | None = None  # the dataset's episode index when kept


@dataclass
class TeleopRecordSummary:
    root: Path
    episodes: int  # in the dataset now
    recorded: int  # committed by this call
    reports: list[EpisodeReport] = field(default_factory=list)
    stop_reason: str = "done"  # "done" | "stop" | "abort" | "safety_stop"
    safety_counts: dict[str, int] = field(default_factory=dict)


def record_teleop(
    robot: Robot,
    teleop: Teleoperator,
    out: Path,
    config: TeleopRecordConfig,
    *,
    controls: Iterable[EventSource] = (),
    say: Callable[[str], None] = print,
    estop: EStop | None = None,
) -> TeleopRecordSummary:
    """Record until the dataset at ``out`` holds ``config.episodes`` episodes, or a stop.

    ``robot`` and ``teleop`` are connected by the caller (and disconnected after). ``controls``:
    more sources of episode events (terminal keys beside a leader arm or a gamepad).

    Raises:
        DirectoryLockedError: another process is writing to ``out``.
        FileExistsError: ``out`` holds a dataset (without ``resume``) or other files.
    """
    out = Path(out)
    check_fits(teleop, robot)
    teleop.attach(robot)
    task = config.task or robot.task
    if not task:
        raise UsageError("--task is required: the robot does not say what it is doing")
    controls = list(controls)
    with ExitStack() as held:
        held.enter_context(exclusive_lock(out, "dataset"))
        writer: DatasetWriter | None = None
        if (out / fmt.INFO_PATH).exists():
            if not config.resume:
                raise FileExistsError(
                    f"{out} already holds a dataset; pass --resume to continue it"
                )
            writer = held.enter_context(DatasetWriter.open_for_resume(out, lock=False))
            check_resumable(writer, robot, config.fps)
        else:
            refuse_to_overwrite(out)
        seed = config.seed
        if writer is not None and writer.episode_rows:
            seed = max(max(int(r.get("seed", -1)) for r in writer.episode_rows) + 1, seed)
        summary = TeleopRecordSummary(out, writer.num_episodes if writer else 0, 0)
        safety = SafetyFilter(
            robot.default_safety(), config.fps, robot.ee_position_fn(), estop=estop or EStop()
        )
        while summary.episodes < config.episodes:
            robot.reset_episode(seed)
            teleop.reset()
            if config.task is None:
                task = robot.task or task
            safety.reset()
            say(f"recording episode {summary.episodes} (seed {seed}): {task}")
            buffer, report = _run_episode(robot, teleop, safety, config, task, controls)
            summary.reports.append(report)
            _add_counts(summary.safety_counts, safety.counts)
            say(
                f"episode {summary.episodes}: {report.frames} frames, end: {report.end}, "
                f"{report.achieved_hz:.1f} Hz achieved (target {config.fps}), "
                f"{report.late_steps} late steps"
            )
            if report.end in ("abort", "safety_stop"):
                summary.stop_reason = report.end
                say(f"episode {summary.episodes} dropped; recording ends ({report.end})")
                break
            if report.end == "rerecord" or len(buffer) == 0:
                say(f"episode {summary.episodes} dropped; recording it again")
                continue
            episode = buffer.finish(seed=seed, success=bool(robot.info.get("is_success", True)))
            if writer is None:
                writer = DatasetWriter.create(
                    out,
                    dataset_features(robot, episode, config.fps, config.codec),
                    config.fps,
                    robot_type=robot_type(robot),
                    lock=False,
                )
                held.enter_context(writer)
            report.index = writer.add_episode(episode)
            summary.recorded += 1
            summary.episodes = writer.num_episodes
            seed += 1
            say(f"episode {report.index} saved ({summary.episodes}/{config.episodes})")
            if report.end == "stop":
                summary.stop_reason = "stop"
                break
            if summary.episodes < config.episodes and config.reset_time_s > 0:
                end = _reset_period(robot, teleop, safety, config, controls, say)
                if end is not None:
                    summary.stop_reason = end
                    break
    return summary


def _run_episode(
    robot: Robot,
    teleop: Teleoperator,
    safety: SafetyFilter,
    config: TeleopRecordConfig,
    task: str,
    controls: list[EventSource],
) -> tuple[EpisodeBuffer, EpisodeReport]:
    buffer = EpisodeBuffer()
    period = 1.0 / config.fps
    max_steps = max(1, round(config.episode_time_s * config.fps))
    late = 0
    starts: list[float] = []
    end = "time"
    next_start = time.monotonic()
    for _ in range(max_steps):
        start = time.monotonic()
        starts.append(start)
        step = teleop_step(robot, teleop, safety)
        if step.filtered.stop:
            end = "safety_stop"
            break
        frame: dict[str, Any] = dict(step.observation.frame)
        frame[TASK] = task
        buffer.add(frame, step.filtered.action)
        events = set(step.command.events)
        for source in controls:
            events.update(source())
        decided = _episode_end(events)
        if decided is not None:
            end = decided
            break
        if robot.episode_done:
            end = "done"
            break
        busy = time.monotonic() - start
        late += busy > period
        next_start = max(next_start + period, time.monotonic())
        time.sleep(max(0.0, next_start - time.monotonic()))
    hz = (len(starts) - 1) / (starts[-1] - starts[0]) if len(starts) > 1 else float("nan")
    return buffer, EpisodeReport(len(buffer), end, hz, late)


def _episode_end(events: set[TeleopEvent]) -> str | None:
    """The strongest control pressed this step: abort > stop > re-record > next."""
    for event in (TeleopEvent.ABORT, TeleopEvent.STOP, TeleopEvent.RERECORD, TeleopEvent.NEXT):
        if event in events:
            return event.value
    return None


def _reset_period(
    robot: Robot,
    teleop: Teleoperator,
    safety: SafetyFilter,
    config: TeleopRecordConfig,
    controls: list[EventSource],
    say: Callable[[str], None],
) -> str | None:
    """Teleoperate without recording for ``reset_time_s`` (next ends it); the end of the
    recording ("stop", "abort", "safety_stop") or None to go on."""
    say(f"reset the scene: {config.reset_time_s:g} s (next: start now)")
    period = 1.0 / config.fps
    end = time.monotonic() + config.reset_time_s
    while time.monotonic() < end:
        start = time.monotonic()
        step = teleop_step(robot, teleop, safety)
        if step.filtered.stop:
            return "safety_stop"
        events = set(step.command.events)
        for source in controls:
            events.update(source())
        decided = _episode_end(events)
        if decided in ("stop", "abort"):
            return decided
        if decided is not None:
            return None
        time.sleep(max(0.0, start + period - time.monotonic()))
    return None


def _add_counts(total: dict[str, int], counts: dict[str, int]) -> None:
    for k, v in counts.items():
        total[k] = total.get(k, 0) + int(v)


def robot_type(robot: Robot) -> str:
    """The dataset's ``robot_type``: a simulated env's own, else the robot's name."""
    env = getattr(robot, "env", None)
    base = getattr(env, "unwrapped", None)
    return str(getattr(base, "robot_type", None) or robot.name)


def dataset_features(robot: Robot, episode: Episode, fps: int, codec: str) -> dict[str, Any]:
    """The features of a dataset of ``robot``'s episodes like ``episode`` (its cameras' sizes,
    its extras: ``intervention``)."""
    obs_names = robot.observation_features.get(OBS_STATE, {}).get("names")
    act_names = robot.action_features[ACTION].get("names")
    state_dim, action_dim = episode.state.shape[1], episode.action.shape[1]
    return fmt.build_features(
        state_dim=state_dim,
        action_dim=action_dim,
        cameras={camera_of(k): tuple(v.shape[1:3]) for k, v in episode.images.items()},
        fps=fps,
        codec=codec,
        state_names=list(obs_names) if obs_names and len(obs_names) == state_dim else None,
        action_names=list(act_names) if act_names and len(act_names) == action_dim else None,
        extras={k: fmt.EXTRA_FEATURES[k] for k in episode.extras},
    )


def check_resumable(writer: DatasetWriter, robot: Robot, fps: int) -> None:
    """A resumed dataset must be this robot's: same rate, sizes and cameras."""
    feats = writer.features
    problems = []
    if writer.fps != fps:
        problems.append(f"it is recorded at {writer.fps} fps, not {fps}")
    have = {k for k in feats if k.startswith(OBS_IMAGES + ".")}
    want = {k for k in robot.observation_features if k.startswith(OBS_IMAGES + ".")}
    if have != want:
        problems.append(f"its cameras are {sorted(have)}, the robot's {sorted(want)}")
    if tuple(feats[ACTION]["shape"]) != (robot.action_dim,):
        problems.append(
            f"its actions have shape {feats[ACTION]['shape']}, the robot's ({robot.action_dim},)"
        )
    if problems:
        raise UsageError(f"cannot resume {writer.root}: " + "; ".join(problems))


__all__ = ["TeleopRecordConfig", "TeleopRecordSummary", "record_teleop"]
