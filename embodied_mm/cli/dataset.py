"""Demonstration datasets: ``record``, ``dataset info|check|import-robomimic|show``, ``bench data``."""

from __future__ import annotations

import json
from contextlib import ExitStack
from pathlib import Path

import typer

from embodied_mm.cli.app import app, bench_app
from embodied_mm.cli.control import DISPLAY_HELP, RRD_HELP
from embodied_mm.errors import UsageError

dataset_app = typer.Typer(help="Inspect, check and convert LeRobot-format datasets.")
app.add_typer(dataset_app, name="dataset")


@app.command()
def record(
    env: str = typer.Option(None, help="Gymnasium id, e.g. embodied_mm/PickLift-v0."),
    engine: str = typer.Option("mujoco", help="Physics engine: mujoco or pybullet."),
    episodes: int = typer.Option(..., help="Episodes the dataset should hold when done."),
    out: Path = typer.Option(..., help="Dataset directory (LeRobot v3.0)."),
    workers: int = typer.Option(1, help="Parallel recording processes (one env each)."),
    resume: bool = typer.Option(False, help="Continue an existing dataset in --out."),
    keep_failures: bool = typer.Option(False, help="Also keep episodes the expert failed."),
    seed: int = typer.Option(0, help="Seed of the first episode (then +1 per attempt)."),
    codec: str = typer.Option("h264", help="Video codec: h264, libsvtav1 (LeRobot's), mpeg4."),
    robot: str = typer.Option(
        None, help="Real arm to teleoperate: so100:<port>, so101:<port>, dynamixel:<port>."
    ),
    teleop: str = typer.Option(
        None, help="A person drives: keyboard, gamepad[:<index>], leader:<port>."
    ),
    camera: list[str] = typer.Option([], help="With --robot: name=source (repeatable)."),
    task: str = typer.Option(None, help="The instruction stored with each episode."),
    calibration: Path = typer.Option(None, help="With --robot: the arm's calibration file."),
    teleop_calibration: Path = typer.Option(
        None, help="With --teleop leader:<port>: the leader arm's calibration file."
    ),
    fps: int = typer.Option(
        None, min=1, help="Control and recording rate (default: env's, or 30)."
    ),
    episode_time_s: float = typer.Option(60.0, help="Longest episode (teleop), seconds."),
    reset_time_s: float = typer.Option(
        None, help="Teleop: unrecorded reset time between episodes (default: 0 sim, 10 real)."
    ),
    perturb: list[str] = typer.Option(
        [], help="Scripted --env: NAME=LEVEL perturbation of every episode (repeatable)."
    ),
    policy: Path = typer.Option(
        None, help="DAgger: this checkpoint drives --env, the scripted expert labels each frame."
    ),
    mode: str = typer.Option("open_loop", help="With --policy: its chunk execution mode."),
    expert_share: float = typer.Option(
        0.0,
        min=0.0,
        max=1.0,
        help="With --policy: chance per step that the expert's action is sent.",
    ),
) -> None:
    """Record demonstrations into a LeRobot v3.0 dataset: scripted experts in simulation
    (--env), or a person teleoperating (--teleop) a simulated (--env) or real (--robot) arm.
    With --policy the policy drives and the expert labels the states it reaches (DAgger);
    every episode is kept, and the success rate printed is the policy's.

    Teleop controls: right arrow (gamepad A) next episode, left arrow (B) re-record, Esc
    (start) stop, Ctrl-C abort (the episode in progress is dropped, the arm holds)."""
    if teleop is not None or robot is not None:
        if policy is not None:
            raise UsageError("--policy records a scripted expert's labels; not with --teleop")
        if perturb:
            raise UsageError("--perturb applies to scripted recording (--env without --teleop)")
        _record_teleop(
            env, engine, robot, teleop, camera, task, calibration, teleop_calibration,
            episodes, out, resume, seed, codec, fps, episode_time_s, reset_time_s,
        )  # fmt: skip
        return
    if env is None:
        raise UsageError("give --env ID (and --teleop for a person to drive)")
    import gymnasium as gym

    from embodied_mm.envs.perturbations import parse_perturb_args

    levels = parse_perturb_args(perturb)  # UsageError naming the known factors / levels

    import embodied_mm.envs  # noqa: F401  (registers the env ids)
    from embodied_mm.data.recorder import gym_expert_source
    from embodied_mm.data.recorder import record as run_record
    from embodied_mm.dirlock import DirectoryLockedError
    from embodied_mm.registry import UnknownNameError

    if env not in gym.registry:
        known = ", ".join(sorted(k for k in gym.registry if k.startswith("embodied_mm/")))
        raise typer.BadParameter(f"unknown env {env!r}; known: {known}", param_hint="--env")
    env_kwargs = {"perturb": levels} if levels else None
    if policy is None:
        source, who = gym_expert_source(env, engine, env_kwargs), "expert"
    else:
        from embodied_mm.data.dagger import dagger_source
        from embodied_mm.runtime.chunking import MODES

        if not (policy / "config.json").is_file():
            raise UsageError(f"--policy {policy}: no saved policy there (config.json)")
        if mode not in MODES:
            raise UsageError(f"unknown --mode {mode!r}; known: {', '.join(MODES)}")
        source, who = dagger_source(env, policy, engine, mode, expert_share, env_kwargs), "policy"
        keep_failures = True  # the policy's failures are where the corrections are
    try:
        summary = run_record(
            source,
            out,
            episodes,
            workers=workers,
            resume=resume,
            keep_failures=keep_failures,
            seed=seed,
            codec=codec,
        )
    except DirectoryLockedError as e:
        # Not a usage mistake: one line naming the holder, and the other run is untouched.
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1) from e
    except (FileExistsError, ValueError, RuntimeError, UnknownNameError) as e:
        raise UsageError(str(e)) from e
    rate = 1 - summary.failures / max(summary.attempts, 1)
    typer.echo(
        f"{out}: {summary.episodes} episodes ({summary.recorded} new); {who} success "
        f"{rate:.0%} over {summary.attempts} attempts"
    )


def _record_teleop(
    env: str | None,
    engine: str,
    robot_spec: str | None,
    teleop_spec: str | None,
    cameras: list[str],
    task: str | None,
    calibration: Path | None,
    teleop_calibration: Path | None,
    episodes: int,
    out: Path,
    resume: bool,
    seed: int,
    codec: str,
    fps: int | None,
    episode_time_s: float,
    reset_time_s: float | None,
) -> None:
    """``record --teleop``: a person drives a simulated or real robot (see the command's help)."""
    from embodied_mm.data.teleop_recorder import TeleopRecordConfig, record_teleop
    from embodied_mm.deploy.session import make_robot
    from embodied_mm.dirlock import DirectoryLockedError
    from embodied_mm.runtime.safety import EStop
    from embodied_mm.runtime.servo_bus import BusError, HardwareError
    from embodied_mm.teleop.base import check_fits
    from embodied_mm.teleop.config import KeyboardConfig
    from embodied_mm.teleop.factory import make_teleop
    from embodied_mm.teleop.keyboard import KeyboardTeleop
    from embodied_mm.teleop.terminal import TerminalKeys, say

    if teleop_spec is None:
        raise UsageError("--robot records with a person driving: give --teleop DEVICE")
    follower_kind = "sim" if robot_spec is None else robot_spec.partition(":")[0]
    device = make_teleop(teleop_spec, teleop_calibration, follower_kind)
    if (env is None) == (robot_spec is None):
        raise UsageError(
            "--teleop drives either a simulated arm (--env ID) or a real one (--robot)"
        )
    if env is not None and cameras:
        raise UsageError("--camera is for --robot; a simulated env renders its own cameras")
    spec = f"sim:{env}" if env is not None else str(robot_spec)
    try:
        the_robot = (
            make_robot(spec, seed=seed, engine=engine)
            if env is not None
            else make_robot(spec, calibration, cameras)
        )
    except (KeyError, FileNotFoundError, ValueError) as e:
        raise UsageError(str(e).strip("'\"")) from e
    controls = []
    keys: TerminalKeys | None = None
    if not isinstance(device, KeyboardTeleop):
        import sys

        if sys.stdin.isatty():  # next / re-record / stop from the keyboard beside the device
            keys = TerminalKeys()
            mapping = KeyboardConfig().events
            controls.append(lambda: [mapping[k] for k in keys.presses() if k in mapping])
    estop = EStop()
    try:
        the_robot.connect()
    except (BusError, HardwareError, ConnectionError, OSError) as e:
        raise UsageError(f"cannot connect {spec}: {e}") from e
    with ExitStack() as connected:
        connected.callback(the_robot.disconnect)
        check_fits(device, the_robot)  # before the device takes the terminal
        if fps is None:  # the env's control rate, or 30 Hz (LeRobot's usual) for a real arm
            fps = _sim_fps(the_robot) if env is not None else 30
        config = TeleopRecordConfig(
            episodes=episodes,
            fps=fps,
            task=task,
            episode_time_s=episode_time_s,
            reset_time_s=(0.0 if env is not None else 10.0)
            if reset_time_s is None
            else reset_time_s,
            resume=resume,
            seed=seed,
            codec=codec,
        )
        try:
            device.connect()
        except (BusError, HardwareError, OSError) as e:
            raise UsageError(f"cannot connect --teleop {teleop_spec}: {e}") from e
        connected.callback(device.disconnect)
        if keys is not None:
            keys.open()
            connected.callback(keys.close)
        estop.install_sigint()
        connected.callback(estop.uninstall_sigint)
        try:
            summary = record_teleop(
                the_robot, device, out, config, controls=controls, say=say, estop=estop
            )
        except DirectoryLockedError as e:
            say(f"error: {e}")
            raise typer.Exit(1) from e
        except FileExistsError as e:
            raise UsageError(str(e)) from e
    typer.echo(
        f"{out}: {summary.episodes} episodes ({summary.recorded} new); ended: "
        f"{summary.stop_reason}; safety interventions: {summary.safety_counts or 'none'}"
    )
    if summary.stop_reason in ("abort", "safety_stop"):
        raise typer.Exit(1)


def _sim_fps(robot) -> int:
    """A simulated robot's control rate, as the scripted recorder reads it."""
    env = robot.env
    return round(getattr(env.unwrapped, "control_hz", None) or env.metadata["render_fps"])


@dataset_app.command()
def info(root: Path = typer.Argument(..., help="Dataset directory.")) -> None:
    """Print a dataset's version, size, features and tasks."""
    from embodied_mm.data.deploy_dataset import intervention_frames
    from embodied_mm.data.reader import DatasetMeta

    meta = DatasetMeta(root)  # not a dataset: a DatasetFormatError (a UsageError), one line
    typer.echo(
        f"{root}: LeRobot {meta.version}, robot {meta.info.get('robot_type')!r}, {meta.fps} fps"
    )
    typer.echo(
        f"episodes: {len(meta.episodes)}  frames: {meta.total_frames}  "
        f"({meta.total_frames / meta.fps:.1f} s)  tasks: {len(meta.tasks)}"
    )
    typer.echo("features:")
    for key, feat in meta.features.items():
        codec = feat.get("info", {}).get("video.codec", "")
        typer.echo(f"  {key:32s} {feat['dtype']:8s} {json.dumps(feat['shape'])} {codec}")
    person = intervention_frames(meta)
    if person is not None:
        share = person / max(meta.total_frames, 1)
        typer.echo(
            f"interventions: {person} frames driven by a person or labelled by the expert "
            f"({share:.1%})"
        )
    typer.echo("tasks:")
    for i, task in sorted(meta.tasks.items())[:20]:
        typer.echo(f"  {i}: {task}")
    if len(meta.tasks) > 20:
        typer.echo(f"  ... {len(meta.tasks) - 20} more")


@dataset_app.command()
def check(root: Path = typer.Argument(..., help="Dataset directory.")) -> None:
    """Verify schema, frame counts against video frames, timestamps and stats."""
    from embodied_mm.data.check import check_dataset

    report = check_dataset(root)
    # The report on stdout, each problem naming its file; one line on stderr and exit 1 (the
    # dataset failed the check; a directory that is no dataset at all is a problem too).
    for err in report.errors:
        typer.echo(f"problem: {err}")
    if not report.ok:
        n = len(report.errors)
        typer.echo(f"error: {root}: {n} problem(s), listed on stdout", err=True)
        raise typer.Exit(1)
    typer.echo(
        f"{root}: OK ({report.episodes} episodes, {report.frames} frames, "
        f"{report.videos_checked} video files)"
    )


@dataset_app.command("import-robomimic")
def import_robomimic(
    hdf5: Path = typer.Argument(..., help="robomimic HDF5 file (data/demo_i/{actions, obs/*})."),
    out: Path = typer.Option(..., help="New dataset directory."),
    fps: int = typer.Option(20, help="Control rate the demos were recorded at."),
    task: str = typer.Option(None, help="Instruction text (default: from env_args)."),
    state_keys: str = typer.Option(None, help="Comma-separated low-dim obs keys for the state."),
) -> None:
    """Convert robomimic demonstrations to a LeRobot v3.0 dataset."""
    from embodied_mm.data.robomimic import import_robomimic as run_import

    keys = [k.strip() for k in state_keys.split(",")] if state_keys else None
    try:
        n = run_import(hdf5, out, fps=fps, task=task, state_keys=keys)
    except (ValueError, FileExistsError) as e:
        raise UsageError(str(e)) from e
    typer.echo(f"{out}: imported {n} episodes from {hdf5}")


@dataset_app.command()
def show(
    root: Path = typer.Argument(..., help="Dataset directory."),
    episode: int = typer.Option(0, help="Episode index."),
    out: Path = typer.Option(
        None, help="Output .mp4 or .png (default: ./<dataset>_episode_<i>.mp4)."
    ),
    display: str = typer.Option("none", help=DISPLAY_HELP),
    rrd: Path | None = typer.Option(None, help=RRD_HELP),
) -> None:
    """Write an episode as video (or a contact-sheet PNG) with instruction, plan and state;
    with --display rerun (or --rrd) send it to Rerun instead (and write --out if given)."""
    from embodied_mm.data.show import log_episode, show_episode
    from embodied_mm.viz.rerun_log import display_log

    viz = display_log(display, rrd, "dataset")
    if viz is not None:
        try:
            n = log_episode(root, episode, viz)  # a bad file or episode: a UsageError
        finally:
            viz.close()
        typer.echo(f"episode {episode}: {n} frames " + (f"in {rrd}" if rrd else "to the viewer"))
        if out is None:
            return
    # Not inside the dataset directory: it holds only LeRobot's files.
    out = out or Path(f"{Path(root).resolve().name}_episode_{episode:06d}.mp4")
    path = show_episode(root, episode, out)  # a bad file or episode: a UsageError, one line
    typer.echo(f"wrote {path}")


@bench_app.command("data")
def bench_data(
    dataset: Path = typer.Option(None, help="Benchmark this dataset instead of a synthetic one."),
    episodes: int = typer.Option(20, min=1, help="Synthetic episodes."),
    length: int = typer.Option(100, min=2, help="Frames per synthetic episode."),
    chunk: int = typer.Option(8, min=1, help="Action chunk K."),
    batch_size: int = typer.Option(32, min=1),
    batches: int = typer.Option(30, min=1, help="Batches timed per loader setting."),
) -> None:
    """Loader samples/s (2 cameras 128x128, K-action chunks), decode cost per frame."""
    from embodied_mm.data.bench import run_bench

    run_bench(dataset, episodes, length, chunk, batch_size, batches, echo=typer.echo)
