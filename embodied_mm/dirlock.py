"""An exclusive lock on a directory that one writer owns (a dataset root, a training run).

Two ``record`` runs on one dataset, or two ``train --resume`` on one run dir, would interleave
their writes; the second must fail at once, naming the holder. The lock is an ``fcntl.flock``
on ``<dir>/.lock``, so the kernel drops it when its process dies (even under kill -9), and
the file holds the holder's pid, host and start time for the error message. A lock file
whose flock is free but which names another holder was left by a process that died: that
stale lock is reported (a warning naming the dead holder) and then taken over.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger(__name__)

LOCK_NAME = ".lock"


class DirectoryLockedError(RuntimeError):
    """Another live process holds the directory's lock."""


def _holder_text(info: dict) -> str:
    pid = info.get("pid", "?")
    host = info.get("host", "?")
    since = info.get("since")
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(since)) if since else "?"
    return f"pid {pid} on host {host} (since {when})"


def _read_holder(fd: int) -> dict:
    os.lseek(fd, 0, os.SEEK_SET)
    raw = os.read(fd, 4096)
    try:
        info = json.loads(raw.decode() or "{}")
    except (UnicodeDecodeError, json.JSONDecodeError):
        return {}
    return info if isinstance(info, dict) else {}


@contextmanager
def exclusive_lock(directory: Path, what: str) -> Iterator[None]:
    """Hold an exclusive lock on ``directory`` for the body of the ``with`` block.

    Args:
        directory: the directory to own; created if missing.
        what: what the directory is, for messages ("dataset", "run directory").

    Raises:
        DirectoryLockedError: another live process holds the lock; the message names its
            pid and host.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            raise DirectoryLockedError(
                f"{what} {directory} is in use by {_holder_text(holder)}; "
                f"wait for it to finish or stop it (lock file {path})"
            ) from None
        previous = _read_holder(fd)
        if previous:
            # The flock was free, so whoever wrote this is gone without releasing it.
            log.warning(
                "%s %s: stale lock from %s, which is no longer running; taking it over",
                what,
                directory,
                _holder_text(previous),
            )
        me = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, json.dumps(me).encode())
        os.fsync(fd)
        try:
            yield
        finally:
            # Empty the file before the flock goes: an empty lock file means a clean release.
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
