"""``embodied-mm serve``, ``embodied-mm deploy`` and ``embodied-mm calibrate``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from embodied_mm.cli.app import app, bench_app
from embodied_mm.cli.control import DISPLAY_HELP, RRD_HELP
from embodied_mm.cli.plan_options import PLAN_HELP, plan_line

if TYPE_CHECKING:
    from embodied_mm.runtime.inference import ChunkSource, LocalPolicy

BACKEND_HELP = "torch, or onnx: --checkpoint is then an `embodied-mm export` directory."


@app.command()
def serve(
    checkpoint: Path = typer.Option(..., help="Policy directory (save_pretrained output)."),
    host: str = typer.Option("127.0.0.1", help="Bind address; non-loopback needs --token."),
    port: int = typer.Option(8000, help="TCP port (0 picks a free one and prints it)."),
    token: str | None = typer.Option(None, help="Clients must send 'Authorization: Api-Key T'."),
    plan: bool | None = typer.Option(None, "--plan/--no-plan", help=PLAN_HELP),
    max_message_mb: float = typer.Option(16.0, help="Largest accepted request, MiB."),
    device: str | None = typer.Option(None, help="torch device (default: cuda if available)."),
    backend: str = typer.Option("torch", help=BACKEND_HELP),
    max_clients: int = typer.Option(64, help="Open connections at most."),
    max_clients_per_address: int = typer.Option(16, help="Open connections from one IP at most."),
    idle_timeout: float = typer.Option(30.0, help="Close a connection idle this many seconds."),
) -> None:
    """Serve a policy over websocket + msgpack (openpi's protocol), batching concurrent clients."""
    import logging

    from embodied_mm.deploy.server import PolicyServer, check_bindable, is_loopback

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if not token and not is_loopback(host):  # refuse before spending time loading the model
        typer.echo(f"error: refusing to serve on {host!r} without --token", err=True)
        raise typer.Exit(2)
    try:
        check_bindable(host, port)
        policy = _local_policy(checkpoint, backend, plan, device)
        typer.echo(plan_line(policy.with_plan, plan, export=backend == "onnx"))
        server = PolicyServer(
            policy,
            host,
            port,
            token,
            max_message_bytes=int(max_message_mb * 1024 * 1024),
            max_clients=max_clients,
            max_clients_per_address=max_clients_per_address,
            idle_timeout_s=idle_timeout,
        )
    except (ValueError, OSError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from e
    try:
        server.run()
    except KeyboardInterrupt:
        typer.echo("server stopped")
    except OSError as e:  # taken between the check and the bind
        typer.echo(f"error: cannot listen on {host}:{port}: {e.strerror or e}", err=True)
        raise typer.Exit(2) from e


@app.command()
def deploy(
    robot: str = typer.Option(
        ...,
        help="sim:<env-id> (e.g. sim:pick_lift), dynamixel:<port>, so100:<port> or so101:<port>.",
    ),
    server: str | None = typer.Option(None, help="Policy server URL, e.g. ws://127.0.0.1:8000."),
    checkpoint: Path | None = typer.Option(None, help="Run this policy in-process instead."),
    token: str | None = typer.Option(None, help="Token for the policy server."),
    hz: float = typer.Option(20.0, help="Control rate."),
    mode: str = typer.Option("async", help="Chunk execution: open_loop, ensemble, async or rtc."),
    steps: int = typer.Option(400, help="Max control steps per episode."),
    episodes: int = typer.Option(1, help="Episodes to run (sim)."),
    instruction: str | None = typer.Option(
        None,
        "--instruction",
        "--task",
        help="The instruction the policy gets (a real robot has no other); with sim:, it "
        "replaces the task's sampled one. --task: the older name, still accepted.",
    ),
    plan: bool | None = typer.Option(None, "--plan/--no-plan", help=PLAN_HELP),
    out: Path = typer.Option(Path("outputs/deploy"), help="Run log (JSONL) and video go here."),
    engine: str = typer.Option("mujoco", help="Sim engine: mujoco or pybullet."),
    action_mode: str = typer.Option("ee_delta", help="Sim action mode: ee_delta or joint_pos."),
    seed: int = typer.Option(0, help="Sim seed of the first episode."),
    calibration: Path | None = typer.Option(None, help="Calibration file (real arms)."),
    camera: list[str] = typer.Option([], help="name=source OpenCV camera (real arms), repeatable."),
    timeout: float = typer.Option(2.0, help="Seconds to wait for the server per request."),
    connect_wait: float = typer.Option(
        120.0, help="Seconds to keep retrying the first connection to --server (it may be starting)"
    ),
    refill_at: int = typer.Option(4, help="async: request the next chunk at this many queued."),
    command_hz: float | None = typer.Option(
        None,
        help="Send jerk-limited commands at this multiple of --hz between actions (real "
        "position-controlled arms; the simulator steps once per action).",
    ),
    command_max_accel: float = typer.Option(20.0, help="--command-hz: acceleration limit /s²."),
    command_max_jerk: float = typer.Option(1000.0, help="--command-hz: jerk limit /s³."),
    watchdog_stop_s: float = typer.Option(1.0, help="Stop after this long without an action."),
    max_obs_age_s: float = typer.Option(0.25, help="Hold when a camera frame is older."),
    backend: str = typer.Option("torch", help=BACKEND_HELP),
    release_on_exit: bool = typer.Option(
        False,
        "--release-on-exit",
        help="Turn the arm's torque off at exit (it falls!); by default it holds, torque on.",
    ),
    teleop: str | None = typer.Option(
        None,
        help="A person may take over: keyboard, gamepad[:<index>] or leader:<port> "
        "(t / gamepad Y: take over, and hand back).",
    ),
    teleop_calibration: Path | None = typer.Option(
        None, help="With --teleop leader:<port>: the leader arm's calibration file."
    ),
    record: Path | None = typer.Option(
        None, help="Also write the run as a LeRobot dataset here (an intervention flag a frame)."
    ),
    resume: bool = typer.Option(False, help="Continue the --record dataset."),
    display: str = typer.Option("none", help=DISPLAY_HELP),
    rrd: Path | None = typer.Option(None, help=RRD_HELP),
) -> None:
    """Run the perception-to-action loop on a robot, behind the safety filter.

    Every stop (Ctrl-C, watchdog, fault) leaves a real arm holding where it is, torque on.
    With --teleop, t (gamepad Y) hands control to the person and back; the person's commands
    pass the same safety filter; → (A) ends the episode, Esc (start) the run."""
    from contextlib import ExitStack

    from embodied_mm.deploy.session import DeployConfig, make_robot, result_dict, run_episodes
    from embodied_mm.dirlock import DirectoryLockedError
    from embodied_mm.errors import UsageError, require_positive
    from embodied_mm.runtime.instruction import check_instruction
    from embodied_mm.runtime.safety import EStop
    from embodied_mm.viz.rerun_log import display_log

    if (server is None) == (checkpoint is None):
        raise UsageError("give exactly one of --server or --checkpoint")
    if server is not None and plan is not None:
        raise UsageError("--plan/--no-plan choose for --checkpoint; a server's `serve --plan` does")
    instruction = check_instruction(instruction)
    if command_hz is not None and robot.startswith("sim:"):
        raise UsageError(
            "--command-hz is for real position-controlled arms: the simulator steps once per "
            "action (its own controller moves the arm between actions)"
        )
    if server is not None:  # the request timeout only applies to a policy server
        require_positive("--timeout", timeout)
    if not connect_wait >= 0 or connect_wait == float("inf"):  # nan fails the first test
        raise UsageError(f"--connect-wait must be a finite number >= 0, got {connect_wait!r}")
    device = None
    if teleop is not None:  # a wrong spec fails before the policy loads
        from embodied_mm.teleop.factory import make_teleop

        device = make_teleop(teleop, teleop_calibration, robot.partition(":")[0])
    cfg = DeployConfig(  # checked before the policy loads
        mode=mode,
        hz=hz,
        max_steps=steps,
        episodes=episodes,
        task=instruction,
        refill_at=refill_at,
        out_dir=out,
        safety_overrides={"watchdog_stop_s": watchdog_stop_s, "max_obs_age_s": max_obs_age_s},
        record=record,
        resume=resume,
        seed=seed,
        command_hz=command_hz,
        command_max_accel=command_max_accel,
        command_max_jerk=command_max_jerk,
    )
    try:
        source, meta = _policy_source(server, checkpoint, token, timeout, backend, connect_wait,
                                      plan)  # fmt: skip
        sim_kwargs = (
            {"engine": engine, "action_mode": action_mode} if robot.startswith("sim:") else {}
        )
        image_size = None
        if meta.get("image_shape"):  # the server enforces a size
            image_size = tuple(meta["image_shape"])
        elif meta.get("policy_image_size"):
            image_size = (meta["policy_image_size"], meta["policy_image_size"])
        bot = make_robot(
            robot, calibration, camera, image_size, seed, release_on_exit, **sim_kwargs
        )
    except (ValueError, KeyError, FileNotFoundError, PermissionError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from e
    estop = EStop()
    estop.install_sigint()  # Ctrl-C = e-stop: hold, then stop; never a bare exit mid-motion

    def status(step: int, loop) -> None:
        if step % max(1, int(hz / 4)) == 0:
            sys.stderr.write("\r" + loop.status_line()[:150])
            sys.stderr.flush()

    def event(message: str) -> None:  # on a line of its own, below the status line
        sys.stderr.write(f"\r\n{message}\r\n")  # \r: a --teleop terminal is in raw mode
        sys.stderr.flush()

    try:
        with bot, ExitStack() as held:
            viz = display_log(display, rrd, "deploy")
            if viz is not None:
                held.callback(viz.close)
            takeover = None
            if device is not None:
                from embodied_mm.teleop.takeover_session import takeover_session

                takeover = held.enter_context(takeover_session(device, bot, estop, event))
            results = run_episodes(bot, source, meta, cfg, estop, status, event, takeover, viz)
    except (ValueError, ConnectionError) as e:
        typer.echo(f"\nerror: {e}", err=True)
        raise typer.Exit(2) from e
    except DirectoryLockedError as e:  # --record: another process writes that dataset
        typer.echo(f"\nerror: {e}", err=True)
        raise typer.Exit(1) from e
    finally:
        estop.uninstall_sigint()
        close = getattr(getattr(source, "client", None), "close", None)
        if close is not None:
            close()
    sys.stderr.write("\n")
    summary = [result_dict(r) for r in results]
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    for i, r in enumerate(summary):
        typer.echo(
            f"episode {i}: {r['stop_reason']} after {r['steps']} steps, success={r['success']}, "
            f"{r['achieved_hz']} Hz, interventions={r['interventions']}"
            + (f", driven by the person: {r['person_steps']} steps" if device else "")
        )
    typer.echo(f"run log and video under {out}")
    if record is not None:
        typer.echo(f"dataset under {record} (`embodied-mm dataset check {record}`)")
    if not robot.startswith("sim:"):
        typer.echo(
            "torque released (--release-on-exit)"
            if release_on_exit
            else "the arm holds its position with torque on (--release-on-exit turns it off)"
        )
    if any(r["stop_reason"] in ("estop", "watchdog_stop", "error") for r in summary):
        raise typer.Exit(1)


def _policy_source(
    server: str | None,
    checkpoint: Path | None,
    token: str | None,
    timeout: float,
    backend: str = "torch",
    connect_wait: float = 0.0,
    with_plan: bool | None = None,
) -> tuple[ChunkSource, dict[str, Any]]:
    """A remote (server) or in-process (checkpoint) chunk source, and its metadata; a server
    that is not up yet is retried for ``connect_wait`` seconds."""
    if server is not None:
        if backend != "torch":
            raise ValueError("--backend applies to --checkpoint; the server picks its own")
        from embodied_mm.deploy.client import PolicyClient, RemotePolicy
        from embodied_mm.runtime.inference import PolicyUnavailable

        client = PolicyClient(server, token, timeout_s=timeout)
        try:
            meta = client.connect_waiting(connect_wait, lambda m: typer.echo(m, err=True))
        except PolicyUnavailable as e:
            raise ValueError(str(e)) from e
        typer.echo("plans: whatever the server sends (its `serve --plan/--no-plan`)")
        return RemotePolicy(client), meta
    local = _local_policy(checkpoint, backend, with_plan)
    typer.echo(plan_line(local.with_plan, with_plan, export=backend == "onnx"))
    return local, local.metadata()


def _local_policy(
    checkpoint: Path, backend: str, with_plan: bool | None = None, device: str | None = None
) -> LocalPolicy:
    """The in-process policy of ``--checkpoint``: PyTorch, or an ONNX export on onnxruntime.
    ``with_plan``: --plan/--no-plan (None: when the policy was trained with plan labels)."""
    from embodied_mm.runtime.inference import LocalPolicy

    if backend == "torch":
        return LocalPolicy.from_checkpoint(checkpoint, with_plan=with_plan, device=device)
    if backend == "onnx":
        from embodied_mm.export.ort_policy import OrtPolicy

        if with_plan:
            raise ValueError("--plan needs --backend torch: ONNX exports hold no plan text")
        return LocalPolicy(OrtPolicy(checkpoint), with_plan=False)
    raise ValueError(f"unknown backend {backend!r}; known: torch, onnx")


@app.command()
def calibrate(
    port: str = typer.Option(..., help="Serial port of the arm's bus, e.g. /dev/ttyUSB0."),
    robot: str | None = typer.Option(
        None, help="so100 or so101 (Feetech STS3215), or a Dynamixel profile (as --profile)."
    ),
    profile: str = typer.Option(
        "koch", help="Dynamixel profile: koch, aloha-viperx, openmanipulator-x."
    ),
    invert: list[str] = typer.Option(
        [], help="so100/so101: a joint that turns the other way (drive mode 1), repeatable."
    ),
    out: Path = typer.Option(Path("calibration.json"), help="Calibration file to write."),
    baudrate: int = typer.Option(1_000_000, help="Bus baud rate."),
) -> None:
    """Measure the arm's offsets and joint ranges (torque off, arm moved by hand) and write the file.

    so100/so101: the homing offsets and ranges are also written into the servos."""
    from embodied_mm.runtime.dynamixel.calibration import PROFILES as DYNAMIXEL_ARMS
    from embodied_mm.runtime.feetech.calibration import PROFILES as FEETECH_ARMS
    from embodied_mm.runtime.servo_bus import BusError, HardwareError

    if robot is not None and robot not in FEETECH_ARMS and robot not in DYNAMIXEL_ARMS:
        known = ", ".join([*sorted(FEETECH_ARMS), *sorted(DYNAMIXEL_ARMS)])
        typer.echo(f"error: unknown --robot {robot!r}; known: {known}", err=True)
        raise typer.Exit(2)
    try:
        if robot in FEETECH_ARMS:
            lines = _calibrate_feetech(port, robot, invert, out, baudrate)
        else:
            if invert:
                raise ValueError("--invert applies to --robot so100/so101")
            lines = _calibrate_dynamixel(port, robot or profile, out, baudrate)
    except (BusError, HardwareError, EOFError, ValueError, KeyError) as e:
        typer.echo(f"error: {e.args[0] if isinstance(e, KeyError) else e}", err=True)
        raise typer.Exit(2) from e
    for line in lines:
        typer.echo(line)
    typer.echo(f"wrote {out}")


def _prompter() -> tuple[Any, Any]:
    """(wait_for_user, sweep_done) on the terminal: Enter answers a prompt; during the range
    sweep sampling runs until Enter."""
    import threading

    done = threading.Event()

    def wait_for_user(prompt: str) -> None:
        typer.echo(prompt)
        if "full range" in prompt:
            threading.Thread(target=lambda: (sys.stdin.readline(), done.set()), daemon=True).start()
            return
        if not sys.stdin.readline():
            raise EOFError("stdin closed during calibration")

    return wait_for_user, done.is_set


def _calibrate_dynamixel(port: str, profile: str, out: Path, baudrate: int) -> list[str]:
    from embodied_mm.runtime.dynamixel.bus import DynamixelBus
    from embodied_mm.runtime.dynamixel.calibration import calibrate as run_calibration
    from embodied_mm.runtime.dynamixel.calibration import get_profile

    arm = get_profile(profile)
    bus = DynamixelBus(port, baudrate)
    ids = [j.motor_id for j in arm.joints]
    wait_for_user, sweep_done = _prompter()
    try:
        bus.open()
        for i in ids:
            bus.ping(i)
        bus.set_torque(ids, False)  # the user moves the arm by hand
        cal = run_calibration(lambda: bus.sync_read_positions(ids), arm, wait_for_user, sweep_done)
    finally:
        bus.close()
    cal.save(out)
    return [
        f"{j.name:>14}: offset {j.offset_ticks:5d} ticks, range [{j.min_rad:+.3f}, {j.max_rad:+.3f}] rad"
        for j in cal.joints
    ]


def _calibrate_feetech(
    port: str, robot: str, invert: list[str], out: Path, baudrate: int
) -> list[str]:
    from embodied_mm.runtime.feetech.bus import FeetechBus
    from embodied_mm.runtime.feetech.calibration import calibrate as run_calibration
    from embodied_mm.runtime.feetech.calibration import get_profile

    arm = get_profile(robot)
    bus = FeetechBus(port, baudrate, motor_names={i: name for name, i in arm.joints})
    wait_for_user, sweep_done = _prompter()
    try:
        bus.open()
        for _, i in arm.joints:
            bus.ping(i)
        cal = run_calibration(bus, arm, wait_for_user, sweep_done, invert)
    finally:
        bus.close()
    cal.save(out)
    return [
        f"{j.name:>14}: homing offset {j.homing_offset:+5d}, range {j.range_min:4d}..{j.range_max:4d}"
        f" ticks = [{lo:+.3f}, {hi:+.3f}] rad, drive mode {j.drive_mode}"
        for j, lo, hi in zip(cal.joints, cal.low, cal.high, strict=True)
    ]


@bench_app.command("deploy")
def bench_deploy(
    out: Path | None = typer.Option(None, help="Also write the markdown report here."),
    latency_ms: float = typer.Option(120.0, help="Policy latency for the control-rate test."),
    hz: float = typer.Option(20.0, help="Control rate for the control-rate test."),
) -> None:
    """Loopback round-trip overhead, control rate async vs sync, server throughput."""
    from embodied_mm.deploy.benchmark import run
    from embodied_mm.errors import UsageError, require_positive

    require_positive("--hz", hz)
    if not latency_ms >= 0 or latency_ms == float("inf"):  # nan fails the first test
        raise UsageError(f"--latency-ms must be a finite number >= 0, got {latency_ms!r}")
    typer.echo(run(out, latency_ms=latency_ms, hz=hz))
