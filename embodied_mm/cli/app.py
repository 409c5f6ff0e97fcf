"""The Typer application objects shared by every command module.

Each ``embodied_mm/cli/<topic>.py`` module adds its commands to these apps with decorators
and keeps heavy imports inside the command bodies, so ``embodied-mm --help`` stays fast.
"""

from __future__ import annotations

import click
import typer
from typer.core import TyperGroup

from embodied_mm.errors import UsageError, one_line


class _Commands(TyperGroup):
    """Every command, with bad input (:class:`~embodied_mm.errors.UsageError`, raised anywhere
    below) shown as one line, ``error: <message>``, and exit code 2 instead of a traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except UsageError as e:
            click.echo(f"error: {one_line(e)}", err=True)
            ctx.exit(2)


app = typer.Typer(
    cls=_Commands,
    name="embodied-mm",
    help="Turn multimodal LLMs into robot controllers: simulate, fine-tune, deploy.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

bench_app = typer.Typer(help="Benchmarks that print numbers (speed, memory, overhead).")
app.add_typer(bench_app, name="bench")
