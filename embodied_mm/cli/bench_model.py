"""``embodied-mm bench model``: latency, throughput and framework overhead of the recipes."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import typer

from embodied_mm.cli.app import bench_app


@bench_app.command("model")
def bench_model(
    size: str = typer.Option("tiny", help="Recipe size: tiny or base."),
    random_weights: bool = typer.Option(
        False, help="Build base sizes from their architectures (no checkpoint download)."
    ),
    device: str = typer.Option("cpu", help="cpu or cuda (bf16 autocast)."),
    iters: int = typer.Option(50, min=5, help="Timed calls per measurement."),
    recipe: list[str] = typer.Option([], help="Recipes to run (default: all)."),
    threads: int = typer.Option(0, help="torch intra-op threads (0: torch's default)."),
    json_out: Path | None = typer.Option(
        None, "--json", help="Also write the rows and the machine to this JSON file."
    ),
) -> None:
    """Per recipe: params, predict_chunk p50/p99 at batch 1, actions/s, framework overhead."""
    import torch

    from embodied_mm.model.benchmark import bench_policy, format_table, head_comparison
    from embodied_mm.policies.recipes import RECIPES, make_policy

    torch.manual_seed(0)
    if threads > 0:
        torch.set_num_threads(threads)
    names = recipe or RECIPES.names()
    rows = []
    for name in names:
        policy = make_policy(name, size=size, random_weights=random_weights, device=device)
        rows.append(bench_policy(name, policy, iters=iters))
        del policy
    where = (
        torch.cuda.get_device_name()
        if device == "cuda"
        else f"CPU, {torch.get_num_threads()} threads"
    )
    typer.echo(f"embodied-mm bench model: size={size}, batch 1, {where}, torch {torch.__version__}")
    typer.echo(format_table(rows))
    comparison = head_comparison(rows)
    if comparison:
        typer.echo(comparison)
    if json_out is not None:
        data = {"command": "embodied-mm bench model", "size": size, "device": where,
                "torch": torch.__version__, "iters": iters,
                "rows": [dataclasses.asdict(r) for r in rows]}  # fmt: skip
        json_out.write_text(json.dumps(data, indent=1) + "\n")
        typer.echo(f"wrote {json_out}")
