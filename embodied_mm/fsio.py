"""Crash-safe file writes: a reader sees the old content or the new, never a mix.

Files created here get the mode a plain ``open()`` would give them (``0o666`` less the
process umask), so datasets and checkpoints are shared the way the user's umask says.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from pathlib import Path
from typing import Any

# What open(..., "w") and mkdir() ask the kernel for; the umask then removes bits.
FILE_MODE = 0o666


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``path`` so that a reader sees the old content or the new, never a mix.

    The bytes go to a temporary file in the same directory, are fsynced, then renamed over
    the target (rename is atomic within a filesystem) and the directory is fsynced. The file
    is created with mode ``0o666`` less the umask (``tempfile.mkstemp`` would force 0600).
    """
    path = Path(path)
    make_dirs(path.parent)
    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=4) + "\n").encode())


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path: Path) -> None:
    """Flush a file's contents to disk (e.g. one another process or library wrote)."""
    _fsync_path(path)


def fsync_dir(path: Path) -> None:
    """Persist a rename: the directory entry itself must reach the disk."""
    _fsync_path(path)


def make_dirs(path: Path) -> None:
    """``mkdir -p`` whose new directories survive a power loss (each parent is fsynced)."""
    path = Path(path)
    missing = []
    while not path.is_dir():
        missing.append(path)
        path = path.parent
    for d in reversed(missing):
        d.mkdir(exist_ok=True)
        fsync_dir(d.parent)


def current_umask() -> int:
    """The process umask, read without changing it (``os.umask`` can only set and return,
    which would race with other threads creating files)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)  # no /proc (not Linux, or kernel < 4.7): set and restore
    os.umask(mask)
    return mask


def follow_umask(path: Path) -> None:
    """Give a file written by a library that forces 0600 (safetensors does) the mode a plain
    ``open()`` would have given it: ``0o666`` less the umask."""
    os.chmod(path, FILE_MODE & ~current_umask())


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
