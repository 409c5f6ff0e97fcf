"""``embodied-mm bench teleop``: device read latency, leader → follower latency, recording rate."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from embodied_mm.cli.app import bench_app


@bench_app.command("teleop")
def bench_teleop(
    reads: int = typer.Option(300, min=1, help="Timed reads per device."),
    trials: int = typer.Option(
        200, min=1, help="Leader moves timed until the follower takes them."
    ),
    fps: int = typer.Option(30, min=1, help="Recording rate to hold."),
    record_s: float = typer.Option(10.0, help="Length of the timed recording, seconds."),
    out: Path = typer.Option(None, help="Also write the figures as JSON here."),
) -> None:
    """Teleop device read latency, leader → follower command latency (p50/p99) on the emulated
    STS3215 buses, and the achieved recording rate with two cameras against the target."""
    from embodied_mm.errors import require_positive
    from embodied_mm.teleop.bench import run_bench

    require_positive("--record-s", record_s)
    results = run_bench(reads, trials, fps, record_s, echo=typer.echo)
    if out is not None:
        out.write_text(json.dumps(results, indent=2) + "\n")
        typer.echo(f"wrote {out}")
