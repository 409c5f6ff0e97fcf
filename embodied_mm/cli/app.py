"""The Typer application objects shared by every command module.

Each ``embodied_mm/cli/<topic>.py`` module adds its commands to these apps with decorators
and keeps heavy imports inside the command bodies, so ``embodied-mm --help`` stays fast.
"""

from __future__ import annotations

import typer

app = typer.Typer(
    name="embodied-mm",
    help="Turn multimodal LLMs into robot controllers: simulate, fine-tune, deploy.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

bench_app = typer.Typer(help="Benchmarks that print numbers (speed, memory, overhead).")
app.add_typer(bench_app, name="bench")
