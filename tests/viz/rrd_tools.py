"""Reading an .rrd back with Rerun's own CLI (``rerun rrd verify`` / ``rerun rrd print``)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

CHUNK = re.compile(r"^Chunk\(\S+\) with (\d+) rows \([^)]*\) - (\S+) - data columns: \[(.*)\]$")


def rerun_cli() -> str:
    """The ``rerun`` executable that rerun-sdk installs next to this interpreter."""
    found = Path(sys.executable).parent / "rerun"
    return str(found) if found.is_file() else (shutil.which("rerun") or "rerun")


def verify(path: Path) -> None:
    proc = subprocess.run([rerun_cli(), "rrd", "verify", str(path)], capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]


def rows_per_entity(path: Path) -> tuple[Counter[str], dict[str, set[str]]]:
    """Rows logged per entity path, and each entity's data columns, from ``rrd print``."""
    proc = subprocess.run([rerun_cli(), "rrd", "print", str(path)], capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows: Counter[str] = Counter()
    columns: dict[str, set[str]] = {}
    for line in proc.stdout.splitlines():
        m = CHUNK.match(line.strip())
        if m:
            rows[m.group(2)] += int(m.group(1))
            columns.setdefault(m.group(2), set()).update(m.group(3).split())
    return rows, columns
