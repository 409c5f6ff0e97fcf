"""The run directory has one owner, and no run is restarted over an old one by accident.

``train`` holds :func:`embodied_mm.dirlock.exclusive_lock` on the run dir for the whole run
(on the main process: under ``accelerate launch`` every rank shares the run dir and only the
main process writes to it), so a second ``train`` on the same dir fails at once, naming the
holder. A run dir that already holds a run is continued only with ``--resume``; ``--overwrite``
moves the old run aside (never deletes it) before starting afresh.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from embodied_mm.dirlock import LOCK_NAME, DirectoryLockedError, exclusive_lock
from embodied_mm.fsio import fsync_dir

CONFIG_NAME = "config.yaml"
METRICS_NAME = "metrics.jsonl"


class RunDirError(RuntimeError):
    """The run directory cannot be used the way this invocation asks."""


def _entries(run_dir: Path) -> list[str]:
    """What the run dir holds, apart from its (empty when released) lock file."""
    if not run_dir.is_dir():
        return []
    return sorted(p.name for p in run_dir.iterdir() if p.name != LOCK_NAME)


def _shown(names: list[str], limit: int = 4) -> str:
    more = f", ... ({len(names)} entries)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def move_aside(run_dir: Path) -> Path:
    """Move everything in ``run_dir`` (except its lock) into a new sibling directory
    ``<name>.replaced-<YYYYmmdd-HHMMSS>`` and return that directory."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = run_dir.with_name(f"{run_dir.name}.replaced-{stamp}")
    n = 1
    while target.exists():
        target = run_dir.with_name(f"{run_dir.name}.replaced-{stamp}-{n}")
        n += 1
    target.mkdir()
    for name in _entries(run_dir):
        os.rename(run_dir / name, target / name)  # same filesystem: nothing is copied
    fsync_dir(target)
    fsync_dir(run_dir)
    return target


def check_run_dir(run_dir: Path, resume: bool, overwrite: bool) -> Path | None:
    """Decide whether this invocation may use ``run_dir``; call it holding the run dir's lock.

    Returns where the old run was moved (``overwrite`` on a non-empty dir), else ``None``.

    Raises:
        RunDirError: the dir holds a run and neither ``resume`` nor ``overwrite`` was given,
            or ``resume`` was given for a dir that holds something other than a run.
    """
    if resume and overwrite:
        raise RunDirError("--resume continues the run in the run dir and --overwrite moves it "
                          "aside; give one of them")  # fmt: skip
    entries = _entries(run_dir)
    if not entries:
        return None
    if overwrite:
        return move_aside(run_dir)
    if resume:
        if not (run_dir / CONFIG_NAME).is_file():
            raise RunDirError(
                f"--resume: {run_dir} holds no run (no {CONFIG_NAME}; found {_shown(entries)}); "
                f"choose another --out, or pass --overwrite instead to move these aside"
            )
        return None
    raise RunDirError(
        f"run directory {run_dir} already holds a run ({_shown(entries)}); pass --resume to "
        f"continue it, or --overwrite to move it aside and start afresh"
    )


@contextmanager
def own_run_dir(
    accelerator: Any, run_dir: Path, resume: bool, overwrite: bool
) -> Iterator[Path | None]:
    """Hold the run dir for the body of the ``with`` block, on every rank of the run.

    The main process takes the lock and checks the dir (:func:`check_run_dir`); the outcome is
    broadcast so that every rank either goes on or raises the same error (a rank that went on
    alone would wait forever in the first collective). Yields where an overwritten run went.

    Raises:
        DirectoryLockedError: another live process holds the run dir.
        RunDirError: see :func:`check_run_dir`.
    """
    from accelerate.utils import broadcast_object_list

    with ExitStack() as stack:
        problem: Exception | None = None
        moved: Path | None = None
        if accelerator.is_main_process:
            try:
                stack.enter_context(exclusive_lock(run_dir, "run directory"))
                moved = check_run_dir(run_dir, resume, overwrite)
            except (DirectoryLockedError, RunDirError) as err:
                problem = err
        problem, moved = broadcast_object_list([(problem, moved)], from_process=0)[0]
        if problem is not None:
            raise problem
        yield moved


def last_logged_loss(run_dir: Path) -> float:
    """The last ``loss`` in the run's ``metrics.jsonl`` (NaN when none was logged)."""
    path = run_dir / METRICS_NAME
    if not path.is_file():
        return math.nan
    for line in reversed(path.read_text().splitlines()):
        row = json.loads(line) if line.strip() else {}
        if "loss" in row:
            return float(row["loss"])
    return math.nan
