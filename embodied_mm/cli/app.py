"""The Typer application objects shared by every command module.

Each ``embodied_mm/cli/<topic>.py`` module adds its commands to these apps with decorators
and keeps heavy imports inside the command bodies, so ``embodied-mm --help`` stays fast.
"""

from __future__ import annotations

import click
import typer
from typer.core import TyperGroup

from embodied_mm.errors import UsageError, one_line

# click's error for options it could not parse. Typer 0.22+ runs a copy of click of its own
# (typer._click), older releases click itself: take the class its BadParameter derives from.
ClickUsageError = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")


class _Commands(TyperGroup):
    """Every command, with bad input shown as one line, ``error: <message>``, and exit code 2
    instead of a traceback: a :class:`~embodied_mm.errors.UsageError` raised anywhere below,
    and click's own errors for options it parses (a missing option, a value out of range),
    which it would otherwise draw as a multi-line box."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except UsageError as e:
            click.echo(f"error: {one_line(e)}", err=True)
            ctx.exit(2)
        except ClickUsageError as e:
            if type(e).__name__ == "NoArgsIsHelpError":  # a command run bare: its help
                raise
            where = e.ctx.command_path if e.ctx is not None else ctx.command_path
            message = " ".join(line.strip() for line in e.format_message().splitlines())
            click.echo(f"error: {message} (see {where} --help)", err=True)
            ctx.exit(e.exit_code)


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
