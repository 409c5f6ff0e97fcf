"""``embodied-mm train``: fine-tune a recipe on LeRobot-format demonstrations."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from embodied_mm.cli.app import app, bench_app

if TYPE_CHECKING:
    from embodied_mm.train.config import TrainConfig


@app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    add_help_option=False,
)
def train(
    ctx: typer.Context,
    config: Path = typer.Option(None, help="YAML file of TrainConfig fields; flags go on top."),
    resume: bool = typer.Option(False, help="Continue the run dir from its last checkpoint."),
    overwrite: bool = typer.Option(
        False, help="Move an existing run in the run dir aside (to RUN.replaced-TIME) first."
    ),
    show_help: bool = typer.Option(False, "--help", "-h", help="Every flag, then exit."),
) -> None:
    """Train a policy: every TrainConfig field is a flag (--steps 4000, --recipe vla-flow,
    --policy.chunk_size 16, --policy.vision.film true); see --help."""
    from embodied_mm.train.config import load_train_config, train_flags_help

    if show_help:
        typer.echo(_HELP + train_flags_help())
        return
    # a wrong flag, file or value raises a ConfigError: one line from embodied_mm.cli.main
    cfg, given = load_train_config(config, list(ctx.args))
    _run(cfg, given, resume, overwrite)


_HELP = """usage: embodied-mm train [--config FILE.yaml] [--resume] [--overwrite] [--FIELD VALUE ...]

Fine-tune a recipe on LeRobot-format demonstrations. The policy starts from the recipe's
preset (--recipe, --size); a YAML file (--config) and then flags change any field, nested
ones as --policy.vision.film true. Values are YAML (4, 1e-4, true, null, [8, 9]); lists
also take a,b; words in flag names take - or _.

  --config FILE   YAML file of the fields below (as the run dir's config.yaml holds them)
  --resume        continue the run dir from its last checkpoint
  --overwrite     move an existing run in the run dir aside first

Fields (policy.* defaults shown are PolicyConfig's; the recipe's preset replaces them):
"""


def _run(cfg: TrainConfig, given: set[str], resume: bool, overwrite: bool) -> None:
    """Train ``cfg``; run-dir refusals and a held lock are one line and exit 2."""
    from embodied_mm.dirlock import DirectoryLockedError
    from embodied_mm.train.run import run_training
    from embodied_mm.train.rundir import RunDirError

    try:
        result = run_training(cfg, resume=resume, overwrite=overwrite, given=given)
    except (DirectoryLockedError, RunDirError) as err:
        from accelerate import PartialState

        if PartialState().is_main_process:  # every rank raises it; say it once
            typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from err
    if result.already_complete:
        typer.echo(
            f"run {cfg.out} is already complete at step {result.step}: final checkpoint "
            f"{result.checkpoint}; last logged loss {result.final_loss:.4f}. Nothing to train "
            f"(pass a larger --steps to go on)"
        )
    else:
        typer.echo(
            f"trained {result.step} steps on {result.num_processes} process(es); "
            f"{result.samples_per_s:.1f} samples/s; final loss {result.final_loss:.4f}"
        )
    if result.checkpoint is not None:
        typer.echo(checkpoint_message(result.checkpoint))


def checkpoint_message(checkpoint: Path) -> str:
    """The line naming the policy a run wrote, as eval, serve and deploy take it."""
    from embodied_mm.train.checkpoint import LAST

    policy = checkpoint / "policy"
    last = checkpoint.parent / LAST
    also = f"; also {last / 'policy'}" if last.resolve() == checkpoint.resolve() else ""
    return f"checkpoint: {policy} (eval, serve and deploy take it as --checkpoint{also})"


@bench_app.command("train")
def bench_train(
    policy: str = typer.Option("vla-chunk", help="Recipe (tiny size)."),
    steps: int = typer.Option(20, help="Optimizer steps per measurement."),
    batch_size: int = typer.Option(8, help="Per-process batch size."),
    ddp: bool = typer.Option(True, help="Also measure accelerate launch with 1 and 2 processes."),
) -> None:
    """Trainer samples/s against a bare PyTorch loop (goal: <= 10% overhead), end to end with
    the video loader, and DDP scaling from 1 to 2 processes."""
    from embodied_mm.train.benchmark import run_train_bench

    rows = run_train_bench(policy, steps, batch_size, ddp)
    typer.echo(f"bench train: {policy} tiny, batch {batch_size}, {steps} steps, 128x128 x2 cams")
    typer.echo(f"{'what':58s} {'samples/s':>10s}  note")
    for what, rate, note in rows:
        typer.echo(f"{what:58s} {rate:10.1f}  {note}")
