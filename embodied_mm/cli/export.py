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
        None, help="Also write a quantised model and make it the default: int8."
    ),
    calibration_dataset: Path | None = typer.Option(
        None,
        help="LeRobot dataset whose frames form the int8 model's calibration batch (stored "
        "in the export, re-checked on load); default: seeded random observations.",
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
        manifest = export_checkpoint(
            checkpoint, out, quantize, batch, calibration_dataset=calibration_dataset
        )
    except (ValueError, OSError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from e
    for precision, files in manifest.models.items():
        names = ", ".join(str(out / f.file) for f in files.values())
        typer.echo(f"{precision}: {names} ({manifest.total_bytes(precision) / 1e6:.2f} MB)")
    check = manifest.int8_check
    if check is not None:
        verdict = "within" if check.measured <= check.tolerance else "OVER"
        typer.echo(
            f"int8 vs fp32 on {check.observations} calibration observations ({check.source}): "
            f"max error {check.measured:.3g} normalised action units, {verdict} the tolerance "
            f"{check.tolerance:g} (scheme {check.scheme})"
        )
    typer.echo(f"wrote {out / 'manifest.json'} (default precision {manifest.default_precision})")


@bench_app.command("export")
def bench_export(
    recipes: list[str] = typer.Option(["vla-chunk", "vla-flow"], "--recipe", help="Repeatable."),
    size: str = typer.Option("tiny", help="Recipe size (base uses random weights)."),
    iters: int = typer.Option(50, min=1, help="Timed calls per backend."),
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


@bench_app.command("int8")
def bench_int8(
    recipes: list[str] = typer.Option(["vla-chunk", "vla-flow"], "--recipe", help="Repeatable."),
    checkpoints: list[Path] = typer.Option(
        [], "--checkpoint", help="Also study this trained policy (repeatable)."
    ),
    dataset: Path | None = typer.Option(
        None, help="LeRobot dataset: evaluate (and calibrate static schemes) on its frames too."
    ),
    iters: int = typer.Option(50, min=1, help="Timed calls per model for the speed-up."),
    out: Path | None = typer.Option(None, help="Also write the markdown table here."),
) -> None:
    """Every int8 scheme's error with and without VNNI (QEMU, if installed) and speed-up."""
    from embodied_mm.errors import UsageError
    from embodied_mm.export.int8_study import run

    for checkpoint in checkpoints:  # before the recipes' studies, which take minutes
        if not (checkpoint / "config.json").is_file():
            raise UsageError(f"--checkpoint {checkpoint}: not a policy directory (no config.json)")
    typer.echo(run(recipes, checkpoints, dataset, iters, out))
