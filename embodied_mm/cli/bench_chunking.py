"""``embodied-mm bench chunking``: success and smoothness of every --mode against latency."""

from __future__ import annotations

from pathlib import Path

import typer

from embodied_mm.cli.app import bench_app


@bench_app.command("chunking")
def bench_chunking(
    checkpoint: Path = typer.Option(..., help="Policy directory (save_pretrained output)."),
    env: str = typer.Option("embodied_mm/ReachObject-v0", help="Env id(s), comma-separated."),
    episodes: int = typer.Option(50, help="Episodes per task and cell."),
    modes: str = typer.Option("open_loop,ensemble,async,rtc", help="Modes, comma-separated."),
    latencies_ms: str = typer.Option(
        "0,100,200,300", help="Injected latencies (ms), comma-separated."
    ),
    refill_at: int = typer.Option(
        4, help="async, rtc: at least this many actions left when asking."
    ),
    engine: str = typer.Option("mujoco", help="mujoco | pybullet"),
    num_envs: int = typer.Option(2, help="Parallel envs per process."),
    out: Path = typer.Option(Path("outputs/bench-chunking"), help="grid.json/.md/.svg and cells/."),
) -> None:
    """For each injected policy latency and each chunk-execution mode, one evaluation in
    simulation (the same seeds in every cell): success (95% Wilson interval), the action change
    at chunk boundaries over the median within chunks, and the joints' RMS jerk. A cell already
    evaluated with the same settings is read back, so an interrupted run continues."""
    from embodied_mm.errors import UsageError
    from embodied_mm.eval.latency_grid import run_latency_grid

    try:
        latencies = [float(x) for x in latencies_ms.split(",") if x.strip()]
    except ValueError:
        raise UsageError(
            f"--latencies-ms takes numbers, comma-separated; got {latencies_ms!r}"
        ) from None
    grid = run_latency_grid(checkpoint, [e for e in env.split(",") if e], episodes, out,
                            [m for m in modes.split(",") if m], latencies, refill_at=refill_at,
                            engine=engine, num_envs=num_envs)  # fmt: skip
    typer.echo((out / "grid.md").read_text())
    typer.echo(
        f"{len(grid['cells'])} cells in {grid['seconds'] / 60:.1f} min; wrote {out / 'grid.json'}"
    )
