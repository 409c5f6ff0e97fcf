"""The ``embodied-mm`` command line (Typer). See :mod:`embodied_mm.cli.main`."""
