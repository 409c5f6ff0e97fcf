"""``embodied-mm envs``, ``embodied-mm rollout``, ``embodied-mm bench envs|experts``."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from embodied_mm.cli.app import app, bench_app
from embodied_mm.cli.control import (
    DISPLAY_HELP,
    HZ_HELP,
    LATENCY_HELP,
    MODE_HELP,
    REFILL_HELP,
    RRD_HELP,
    VIDEO_CAMERA_HELP,
)
from embodied_mm.cli.plan_options import (
    INSTRUCTION_HELP,
    PLAN_HELP,
    end_status,
    episode_line,
    is_export,
    live_status,
    plan_line,
)

ENGINE_NAMES = ("mujoco", "pybullet")


def _check_engine(engine: str) -> None:
    if engine not in ENGINE_NAMES:
        raise typer.BadParameter(f"engine {engine!r} is not one of {list(ENGINE_NAMES)}")


def _engine_available(engine: str) -> bool:
    from embodied_mm.envs.engines import engine_class

    try:
        engine_class(engine)
    except RuntimeError:
        return False
    return True


@app.command("envs")
def list_envs(
    perturbations: bool = typer.Option(
        False, help="List the perturbation factors (--perturb NAME=LEVEL) and their levels."
    ),
) -> None:
    """List the Gymnasium ids of the tabletop tasks (with task name and episode length)."""
    from embodied_mm.envs.registration import task_ids
    from embodied_mm.envs.tasks import TASKS

    if perturbations:
        from embodied_mm.envs.perturbations import factor_table

        for f in factor_table():
            unit = f" {f['unit']}" if f["unit"] else ""
            levels = ", ".join(f"{k}={v}{unit}" for k, v in f["levels"].items())
            typer.echo(f"{f['name']:16s} {f['group']:8s} {levels:42s} {f['description']}")
        return

    for env_id, name in sorted(task_ids().items()):
        task = TASKS.get(name)
        typer.echo(f"{env_id:30s} task={name:15s} max_steps={task.max_steps}")


@app.command("rollout")
def rollout_cmd(
    env: str = typer.Option(..., "--env", help="Gymnasium id, e.g. embodied_mm/PickLift-v0."),
    engine: str = typer.Option("mujoco", help="mujoco or pybullet."),
    policy: str = typer.Option("scripted", help="scripted, random, or a checkpoint directory."),
    episodes: int = typer.Option(10, min=1, help="Episodes (seeds seed, seed+1, ...)."),
    seed: int = typer.Option(0, help="First episode's seed."),
    video_dir: Path | None = typer.Option(None, help="Write front-camera mp4s and summary.json."),
    image_size: int = typer.Option(128, min=16, help="Camera image height and width."),
    summary: Path | None = typer.Option(None, help="Summary JSON path (default video_dir/)."),
    action_mode: str = typer.Option("ee_delta", help="ee_delta or joint_pos (the policy's)."),
    mode: str = typer.Option("open_loop", help=MODE_HELP),
    hz: float = typer.Option(20.0, help=HZ_HELP),
    refill_at: int = typer.Option(4, help=REFILL_HELP),
    latency_steps: int | None = typer.Option(None, help=LATENCY_HELP),
    video_camera: str = typer.Option("presentation", help=VIDEO_CAMERA_HELP),
    display: str = typer.Option("none", help=DISPLAY_HELP),
    rrd: Path | None = typer.Option(None, help=RRD_HELP),
    perturb: list[str] = typer.Option(
        [],
        help="NAME=LEVEL: a perturbation factor at a level (repeatable; `envs --perturbations`).",
    ),
    instruction: str | None = typer.Option(None, help=INSTRUCTION_HELP + " (checkpoints)"),
    plan: bool | None = typer.Option(None, "--plan/--no-plan", help=PLAN_HELP),
) -> None:
    """Run episodes of a task with a policy; print the success rate. A checkpoint runs
    through deploy's controller stack (chunk executor of --mode + safety filter); each
    episode's instruction and plans are printed and kept in summary.json."""
    from embodied_mm.envs.perturbations import parse_perturb_args
    from embodied_mm.envs.rollout import is_checkpoint, rollout
    from embodied_mm.runtime.controller import ControlSpec
    from embodied_mm.viz.rerun_log import display_log

    _check_engine(engine)
    control = ControlSpec(mode, hz, refill_at, latency_steps)  # bad values: UsageError
    levels = parse_perturb_args(perturb)  # UsageError naming the known factors / levels
    try:
        viz = display_log(display, rrd, "rollout")
        try:
            result = rollout(env, engine, policy, episodes, video_dir, seed, image_size,
                             summary, action_mode, control, video_camera=video_camera,
                             viz=viz, perturb=levels, instruction=instruction,
                             with_plan=plan, on_step=live_status())  # fmt: skip
        finally:
            end_status()
            if viz is not None:
                viz.close()
    except (ValueError, RuntimeError) as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from err
    if is_checkpoint(policy):
        typer.echo(plan_line(result.with_plan, plan, export=is_export(policy)))
    for record in result.per_episode:
        typer.echo(episode_line(record))
    typer.echo(
        f"{env} engine={engine} policy={policy}: success {result.successes}/{result.episodes}"
        f" = {result.success_rate:.0%} (mean {result.mean_steps:.0f} steps, "
        f"{result.seconds:.1f} s)"
        + (f", interventions {result.interventions}" if result.interventions else "")
    )
    if video_dir is not None:
        typer.echo(f"videos and summary.json in {video_dir}")


@bench_app.command("envs")
def bench_envs(
    steps: int = typer.Option(300, min=10, help="Control steps per measurement."),
    task: str = typer.Option("pick_lift", help="Task to step (its expert drives the arm)."),
    engines: str = typer.Option("mujoco,pybullet", help="Comma-separated engines."),
    num_envs: int = typer.Option(2, min=1, help="Workers of the async vector env."),
) -> None:
    """Control steps/s with 2 cameras at 128x128: single env (physics/IK/render split) and an
    async vector env. Goal: MuJoCo renders both cameras in <= 3 ms per step on CPU."""
    import os

    from embodied_mm.envs.benchmark import bench_async, bench_single

    # Shared machines skew wall-clock figures: print the load they were measured under.
    typer.echo(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    for engine in engines.split(","):
        _check_engine(engine)
        if not _engine_available(engine):
            typer.echo(f"{engine:9s} not available")
            continue
        s = bench_single(engine, task, steps)
        typer.echo(
            f"{engine:9s} single: {s['steps_per_s']:7.1f} steps/s  step {s['step_ms']:.2f} ms = "
            f"physics {s['physics_ms']:.2f} + IK {s['ik_ms']:.2f} + render {s['render_ms']:.2f}"
            f" (2 cams; render CPU time {s['render_cpu_ms']:.2f}) + rest"
        )
        typer.echo(
            f"{engine:9s} video for people (per frame, only while one is written): presentation "
            f"480x360 render {s['presentation_render_ms']:.2f} ms + banner "
            f"{s['presentation_banner_ms']:.2f} + H.264 encode {s['presentation_encode_ms']:.2f}"
            f" (CPU time {s['presentation_cpu_ms']:.2f})"
        )
        v = bench_async(engine, task, steps, num_envs)
        typer.echo(f"{engine:9s} async x{num_envs}: {v['steps_per_s']:7.1f} env steps/s")


@bench_app.command("experts")
def bench_experts(
    episodes: int = typer.Option(100, min=1, help="Episodes (seeds) per task."),
    first_seed: int = typer.Option(0, help="Seeds first_seed .. first_seed + episodes - 1."),
    engine: str = typer.Option("mujoco", help="mujoco or pybullet."),
    tasks: str = typer.Option("", help="Comma-separated task names; default all."),
    action_mode: str = typer.Option("ee_delta", help="ee_delta or joint_pos."),
    out: Path | None = typer.Option(None, help="Also write the results as JSON."),
) -> None:
    """Success rate of every task's scripted expert (target: >= 95% over 100 seeds)."""
    from embodied_mm.envs.benchmark import expert_success
    from embodied_mm.envs.tasks import TASKS

    _check_engine(engine)
    names = [t for t in tasks.split(",") if t] or TASKS.names()
    results = []
    for name in names:
        TASKS.get(name)  # unknown name: error listing the tasks
        r = expert_success(name, engine, range(first_seed, first_seed + episodes), action_mode)
        results.append(r)
        typer.echo(
            f"{name:15s} {engine:9s} success {r['success_rate']:6.1%} over {r['episodes']} "
            f"(mean {r['mean_steps']:.0f} steps, {r['seconds']:.0f} s) failed: {r['failed_seeds']}"
        )
    if out is not None:
        out.write_text(json.dumps(results, indent=2))
