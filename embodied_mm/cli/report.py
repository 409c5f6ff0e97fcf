"""``embodied-mm report RUN_DIR``: (re)build an evaluation run's ``report.html``."""

from __future__ import annotations

from pathlib import Path

import typer

from embodied_mm.cli.app import app


@app.command("report")
def report_command(
    run_dir: Path = typer.Argument(..., help="An eval output dir (eval_info.json, suite.json)."),
) -> None:
    """Write RUN_DIR/report.html: tables per task (and per factor x level for a suite),
    success-against-level plots, each episode's instruction and plan, failure clips first."""
    from embodied_mm.report.html import write_report

    typer.echo(f"wrote {write_report(run_dir)}")
