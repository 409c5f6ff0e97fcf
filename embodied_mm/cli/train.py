"""``embodied-mm train``: fine-tune a recipe on LeRobot-format demonstrations."""

from __future__ import annotations

from pathlib import Path

import typer

from embodied_mm.cli.app import app


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
    stage: str = typer.Option(None, help="instruct (default)."),
    config: Path = typer.Option(None, help="YAML file of TrainConfig fields."),
    resume: bool = typer.Option(False, help="Continue the run dir from its last checkpoint."),
) -> None:
    """Train a policy. Any other TrainConfig field is accepted as --field-name VALUE."""
    from embodied_mm.train.config import TrainConfig, apply_overrides, parse_cli_overrides
    from embodied_mm.train.run import run_training

    cfg = TrainConfig.from_yaml(config) if config else TrainConfig()
    named = {
        "policy": policy, "dataset": dataset, "out": out, "steps": steps,
        "batch_size": batch_size, "lr": lr, "lora_r": lora_r, "freeze": freeze, "stage": stage,
    }  # fmt: skip
    try:
        values = {k: v for k, v in named.items() if v is not None}
        values.update(parse_cli_overrides(list(ctx.args)))
        cfg = apply_overrides(cfg, values)
    except ValueError as err:
        raise typer.BadParameter(str(err)) from err
    result = run_training(cfg, resume=resume)
    typer.echo(
        f"trained {result.step} steps on {result.num_processes} process(es); "
        f"final loss {result.final_loss:.4f}; checkpoint {result.checkpoint}"
    )
