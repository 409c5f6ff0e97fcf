"""``embodied-mm train``: fine-tune a recipe on LeRobot-format demonstrations."""

from __future__ import annotations

from pathlib import Path

import typer

from embodied_mm.cli.app import app, bench_app


@app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
def train(
    ctx: typer.Context,
    policy: str = typer.Option(None, help="Recipe name (see `embodied-mm policies`)."),
    dataset: str = typer.Option(None, help="Dataset dir(s), comma-separated."),
    out: str = typer.Option(None, help="Run directory."),
    steps: int = typer.Option(None, help="Optimizer steps."),
    batch_size: int = typer.Option(None, help="Per-process batch size."),
    lr: float = typer.Option(None, help="Peak learning rate."),
    lora_r: int = typer.Option(None, help="LoRA rank on the backbone (0 = none)."),
    freeze: str = typer.Option(None, help="Comma-separated: vision,backbone,proprio."),
    stage: str = typer.Option(
        None, help="align | ground | instruct (default); see docs/training.md."
    ),
    config: Path = typer.Option(None, help="YAML file of TrainConfig fields."),
    resume: bool = typer.Option(False, help="Continue the run dir from its last checkpoint."),
    overwrite: bool = typer.Option(
        False, help="Move an existing run in the run dir aside (to RUN.replaced-TIME) first."
    ),
) -> None:
    """Train a policy. Any other TrainConfig field is accepted as --field-name VALUE."""
    from embodied_mm.dirlock import DirectoryLockedError
    from embodied_mm.train.config import (
        TrainConfig,
        apply_overrides,
        parse_cli_overrides,
        read_yaml_values,
    )
    from embodied_mm.train.run import run_training
    from embodied_mm.train.rundir import RunDirError

    named = {
        "policy": policy, "dataset": dataset, "out": out, "steps": steps,
        "batch_size": batch_size, "lr": lr, "lora_r": lora_r, "freeze": freeze, "stage": stage,
    }  # fmt: skip
    try:
        cfg = TrainConfig.from_yaml(config) if config else TrainConfig()
        given = set(read_yaml_values(config)) if config else set()  # what --resume compares
        values = {k: v for k, v in named.items() if v is not None}
        values.update(parse_cli_overrides(list(ctx.args)))
        cfg = apply_overrides(cfg, values)
        given |= set(values)
    except ValueError as err:
        raise typer.BadParameter(str(err)) from err
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
        return
    typer.echo(
        f"trained {result.step} steps on {result.num_processes} process(es); "
        f"{result.samples_per_s:.1f} samples/s; final loss {result.final_loss:.4f}; "
        f"checkpoint {result.checkpoint}"
    )


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
