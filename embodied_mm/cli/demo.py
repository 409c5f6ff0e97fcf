"""``embodied-mm demo``: the main job of the quickstart."""

from __future__ import annotations

from pathlib import Path

import typer

from embodied_mm.cli.app import app


@app.command()
def demo(
    out: Path = typer.Option(Path("outputs/demo"), help="Where the video and summary go."),
) -> None:
    """Run a simulated episode with the shipped default policy and write a video."""
    typer.echo(
        "embodied-mm demo: the environments and the trained default policy are not built yet; "
        "nothing to run. See the open issues."
    )
    out.mkdir(parents=True, exist_ok=True)
