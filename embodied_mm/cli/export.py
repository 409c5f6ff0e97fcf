"""``embodied-mm export`` and ``embodied-mm bench export``."""

from __future__ import annotations

from pathlib import Path

import typer

from embodied_mm.cli.app import app, bench_app

FORMATS = ("onnx",)


@app.command("export")
def export_cmd(
    checkpoint: Path = typer.Option(..., help="Policy directory (save_pretrained output)."),
    format: str = typer.Option("onnx", "--format", help="Export format: onnx."),
    out: Path = typer.Option(..., help="Export directory (model, manifest.json, tokenizer/)."),
    quantize: str | None = typer.Option(
        None, help="Also write a dynamically quantised model and make it the default: int8."
    ),
    batch: int | None = typer.Option(
        None,
        help="Fix the batch size (e.g. 1 for a robot's control loop: faster, shapes fold "
        "away); default: a dynamic batch axis (the policy server batches clients).",
    ),
) -> None:
    """Export a trained policy for onnxruntime (run it with serve/deploy --backend onnx)."""
    if format not in FORMATS:
        typer.echo(f"error: unknown format {format!r}; known: {', '.join(FORMATS)}", err=True)
        raise typer.Exit(2)
    from embodied_mm.export.onnx_export import export_checkpoint

    try:
        manifest = export_checkpoint(checkpoint, out, quantize, batch)
    except (ValueError, OSError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from e
    for precision, files in manifest.models.items():
        names = ", ".join(str(out / f.file) for f in files.values())
        typer.echo(f"{precision}: {names} ({manifest.total_bytes(precision) / 1e6:.2f} MB)")
    if manifest.int8_tolerance is not None:
        typer.echo(f"int8 vs fp32: max |diff| {manifest.int8_tolerance:.4g} (robot units)")
    typer.echo(f"wrote {out / 'manifest.json'} (default precision {manifest.default_precision})")


@bench_app.command("export")
def bench_export(
    recipes: list[str] = typer.Option(["vla-chunk", "vla-flow"], "--recipe", help="Repeatable."),
    size: str = typer.Option("tiny", help="Recipe size (base uses random weights)."),
    iters: int = typer.Option(50, help="Timed calls per backend."),
    threads: int = typer.Option(
        1,
        help="Threads for torch and onnxruntime (0: all cores). 1 by default: on a shared "
        "machine, more threads spin-wait against other processes and measure the load.",
    ),
    out: Path | None = typer.Option(None, help="Also write the markdown table here."),
) -> None:
    """PyTorch eager vs onnxruntime fp32 vs int8: batch-1 latency, file size, peak memory."""
    from embodied_mm.export.benchmark import run

    typer.echo(run(recipes, size, iters, threads or None, out))
