"""The directory lock: one live holder at a time, named in the error; a dead holder's lock
is reported and taken over."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from embodied_mm.dirlock import LOCK_NAME, DirectoryLockedError, exclusive_lock

HOLD = """
import sys, time
from pathlib import Path
from embodied_mm.dirlock import exclusive_lock
with exclusive_lock(Path(sys.argv[1]), "dataset"):
    print("held", flush=True)
    time.sleep(60)
"""


def _hold_in_child(directory: Path) -> subprocess.Popen:
    child = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(directory)], stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "held"
    return child


def test_second_holder_fails_naming_the_first(tmp_path: Path) -> None:
    child = _hold_in_child(tmp_path)
    try:
        with (
            pytest.raises(DirectoryLockedError, match=f"pid {child.pid} on host"),
            exclusive_lock(tmp_path, "dataset"),
        ):
            pass
    finally:
        child.kill()
        child.wait()


def test_kill_9_leaves_a_stale_lock_that_is_reported_and_taken_over(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    child = _hold_in_child(tmp_path)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    with caplog.at_level(logging.WARNING), exclusive_lock(tmp_path, "dataset"):
        assert str(os.getpid()) in (tmp_path / LOCK_NAME).read_text()
    assert f"stale lock from pid {child.pid}" in caplog.text


def test_clean_release_is_not_reported_as_stale(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with exclusive_lock(tmp_path, "run directory"):
        pass
    with caplog.at_level(logging.WARNING), exclusive_lock(tmp_path, "run directory"):
        pass
    assert "stale" not in caplog.text
