"""SIGKILL at random moments, most of them inside commits (synthetic episodes are instant,
so a recorder spends its time renaming, remuxing and rewriting metadata)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from embodied_mm.data.check import check_dataset
from embodied_mm.data.reader import DatasetMeta, load_frames
from embodied_mm.features import ACTION, OBS_STATE
from tests.data.conftest import episodes_table
from tests.data.synthetic_source import SyntheticSource

RECORD = """
import sys
from pathlib import Path
from embodied_mm.data.recorder import record
from tests.data.synthetic_source import synthetic_factory
root = Path(sys.argv[1])
record(synthetic_factory(), root, 10_000, resume=(root / "meta/info.json").exists(),
       progress=False)
"""


def _committed(root: Path) -> int:
    try:
        return json.loads((root / "meta/info.json").read_text())["total_episodes"]
    except (FileNotFoundError, json.JSONDecodeError, KeyError):
        return 0


@pytest.mark.slow
def test_repeated_kill_9_during_commits_never_corrupts(tmp_path: Path):
    root = tmp_path / "ds"
    rng = random.Random(0)
    seen = 0
    for _ in range(4):
        proc = subprocess.Popen([sys.executable, "-c", RECORD, str(root)],
                                stderr=subprocess.PIPE)  # fmt: skip
        deadline = time.monotonic() + 60
        while _committed(root) <= seen:
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "no progress"
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.3))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stderr.close()
        report = check_dataset(root)
        assert report.ok, report.errors
        assert report.episodes >= seen + 1
        seen = report.episodes

    # every committed episode is exactly the one its seed produces (nothing torn or mixed)
    meta = DatasetMeta(root)
    cols = load_frames(meta).columns
    eps = episodes_table(root)
    # a row past total_episodes is an episode whose commit the last kill interrupted
    eps = eps[eps["episode_index"] < len(meta.episodes)].sort_values("episode_index")
    source = SyntheticSource()
    for ep, seed in zip(meta.episodes, eps["seed"], strict=True):
        want = source.episode(int(seed))
        rows = slice(ep.from_index, ep.to_index)
        assert want.success and ep.length == len(want)
        np.testing.assert_array_equal(cols[OBS_STATE][rows], want.state)
        np.testing.assert_array_equal(cols[ACTION][rows], want.action)
    assert eps["seed"].tolist() == [s for s in range(eps["seed"].max() + 1) if s % 4 != 3]


RECORD_PARALLEL = """
import sys
from pathlib import Path
from embodied_mm.data.recorder import record
from tests.data.synthetic_source import synthetic_factory
record(synthetic_factory(step_sleep=0.05), Path(sys.argv[1]), int(sys.argv[2]), workers=2,
       resume=True, progress=False)
"""


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(c) for c in path.read_text().split()] if path.exists() else []


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has exited


@pytest.mark.slow
def test_kill_9_with_workers_stops_the_workers_and_resumes(tmp_path: Path):
    root = tmp_path / "ds"
    proc = subprocess.Popen([sys.executable, "-c", RECORD_PARALLEL, str(root), "1000"],
                            stderr=subprocess.PIPE)  # fmt: skip
    deadline = time.monotonic() + 60
    while _committed(root) < 2:
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline, "no progress"
        time.sleep(0.02)
    children = _children(proc.pid)
    assert len(children) >= 2  # the two spawned workers (and multiprocessing's tracker)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stderr.close()
    deadline = time.monotonic() + 20
    while any(_alive(c) for c in children) and time.monotonic() < deadline:
        time.sleep(0.1)
    leftover = [c for c in children if _alive(c)]
    for c in leftover:  # do not leak them even when the test fails
        os.kill(c, signal.SIGKILL)
    assert not leftover, "recording workers outlived the killed recorder"

    assert check_dataset(root).ok
    target = _committed(root) + 3
    subprocess.run([sys.executable, "-c", RECORD_PARALLEL, str(root), str(target)],
                   check=True, timeout=120)  # fmt: skip
    report = check_dataset(root)
    assert report.ok and report.episodes == target, report.errors
