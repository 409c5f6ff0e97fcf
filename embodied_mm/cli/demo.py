"""``embodied-mm demo``: the main job of the quickstart."""

from __future__ import annotations

from pathlib import Path

import typer

from embodied_mm.cli.app import app
from embodied_mm.cli.control import LATENCY_HELP, MODE_HELP, VIDEO_CAMERA_HELP
from embodied_mm.cli.plan_options import (
    INSTRUCTION_HELP,
    PLAN_HELP,
    end_status,
    episode_line,
    live_status,
    plan_line,
)

DEFAULT_ENV = "embodied_mm/PickLift-v0"


def shipped_checkpoint() -> Path | None:
    """The default policy shipped in ``sim_assets/checkpoints/default``, when there is one."""
    from importlib import resources

    path = Path(str(resources.files("embodied_mm.sim_assets") / "checkpoints" / "default"))
    return path if (path / "config.json").is_file() else None


@app.command()
def demo(
    env: str = typer.Option(DEFAULT_ENV, help="Env id (see `embodied-mm envs`)."),
    engine: str = typer.Option("mujoco", help="mujoco | pybullet"),
    episodes: int = typer.Option(1, help="Episodes to run."),
    seed: int = typer.Option(100_000, help="First episode seed (held out from training)."),
    out: Path = typer.Option(Path("outputs/demo"), help="Where the videos and summary go."),
    mode: str = typer.Option("open_loop", help=MODE_HELP),
    latency_steps: int | None = typer.Option(None, help=LATENCY_HELP),
    video_camera: str = typer.Option("presentation", help=VIDEO_CAMERA_HELP),
    instruction: str | None = typer.Option(None, help=INSTRUCTION_HELP),
    plan: bool | None = typer.Option(None, "--plan/--no-plan", help=PLAN_HELP),
) -> None:
    """Run a simulated episode with the shipped default policy (behind deploy's controller
    stack: chunk executor of --mode + safety filter) and write a video."""
    from embodied_mm.envs.rollout import rollout
    from embodied_mm.runtime.controller import ControlSpec

    control = ControlSpec(mode, latency_steps=latency_steps)  # bad values: UsageError

    checkpoint = shipped_checkpoint()
    if checkpoint is None:
        typer.echo(
            "No trained default policy is shipped yet (sim_assets/checkpoints/default); "
            "running the task's scripted expert instead."
        )
        policy = "scripted"
    else:
        typer.echo(f"Policy: the shipped default checkpoint {checkpoint}")
        policy = str(checkpoint)
    try:
        summary = rollout(env, engine, policy, episodes, out, seed=seed, control=control,
                          video_camera=video_camera, instruction=instruction, with_plan=plan,
                          on_step=live_status())  # fmt: skip
    finally:
        end_status()
    if checkpoint is not None:
        typer.echo(plan_line(summary.with_plan, plan))
    for record in summary.per_episode:
        typer.echo(episode_line(record))
    typer.echo(
        f"{env} on {engine}: success {summary.successes}/{summary.episodes}, safety "
        f"interventions {summary.interventions or 'none'}; video and summary.json in {out}"
    )
