"""Entry point of the ``embodied-mm`` command: imports every command module, then runs."""

from __future__ import annotations

from embodied_mm.cli import bench_chunking as _bench_chunking  # noqa: F401
from embodied_mm.cli import bench_model as _bench_model  # noqa: F401
from embodied_mm.cli import bench_teleop as _bench_teleop  # noqa: F401
from embodied_mm.cli import dataset as _dataset  # noqa: F401
from embodied_mm.cli import demo as _demo  # noqa: F401  (registers commands)
from embodied_mm.cli import deploy as _deploy  # noqa: F401
from embodied_mm.cli import envs as _envs  # noqa: F401
from embodied_mm.cli import eval as _eval  # noqa: F401
from embodied_mm.cli import export as _export  # noqa: F401
from embodied_mm.cli import policies as _policies  # noqa: F401
from embodied_mm.cli import report as _report  # noqa: F401
from embodied_mm.cli import train as _train  # noqa: F401
from embodied_mm.cli.app import app


def main() -> None:
    app()


if __name__ == "__main__":
    main()
