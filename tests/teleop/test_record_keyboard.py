"""`embodied-mm record --env ID --teleop keyboard` on a real pseudo-terminal: a scripted
person types keys; the dataset passes `dataset check`, trains, and survives kill -9."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from embodied_mm.data.check import check_dataset
from embodied_mm.data.reader import DatasetMeta
from tests.teleop.pty_session import PYTHON, PtySession

ENV_ID = "embodied_mm/PickLift-v0"
CHILD_ENV = {"MUJOCO_GL": "egl", "OMP_NUM_THREADS": "1"}
REPO = Path(__file__).resolve().parents[2]


def record(out: Path, episodes: int, *extra: str) -> PtySession:
    argv = [
        PYTHON, "-m", "embodied_mm.cli.main", "record", "--env", ENV_ID, "--teleop", "keyboard",
        "--episodes", str(episodes), "--out", str(out), *extra,
    ]  # fmt: skip
    return PtySession(argv, env=CHILD_ENV, cwd=REPO)


def hold_key(session: PtySession, key: bytes, seconds: float) -> None:
    """A held key as a terminal sends it: auto-repeats every 50 ms."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        session.type(key)
        time.sleep(0.05)


def actions(root: Path) -> dict[int, np.ndarray]:
    """episode index -> (T, 7) recorded actions."""
    df = pd.concat(pd.read_parquet(p) for p in sorted(root.glob("data/*/*.parquet")))
    return {
        int(e): np.stack(g.sort_values("frame_index")["action"].to_numpy())
        for e, g in df.groupby("episode_index")
    }


@pytest.fixture(scope="module")
def keyboard_dataset(tmp_path_factory) -> tuple[Path, str]:
    """Episode 0: x forward then →; an attempt dropped with ←; episode 1: close, time limit."""
    out = tmp_path_factory.mktemp("teleop") / "ds"
    s = record(out, 2, "--episode-time-s", "2.5")
    try:
        s.expect("recording episode 0", 120)
        hold_key(s, b"w", 0.8)
        s.type(b"\x1b[C")  # →: next
        s.expect("recording episode 1 (seed 1)", 60)
        hold_key(s, b"a", 0.3)
        s.type(b"\x1b[D")  # ←: re-record (the y motion is dropped)
        s.expect("recording it again", 60)
        s.expect("recording episode 1 (seed 1)", 60)
        s.type(b"c")  # close the gripper, then wait for the time limit
        assert s.wait(120) == 0, s.text
    finally:
        s.close()
    return out, s.text


def test_a_keyboard_session_records_what_was_typed(keyboard_dataset):
    out, log = keyboard_dataset
    report = check_dataset(out)
    assert report.ok, report.errors
    assert report.episodes == 2
    acts = actions(out)
    ep0, ep1 = acts[0], acts[1]
    assert (ep0[:, 0] > 0).sum() >= 8  # 0.8 s of w at 20 Hz, x only
    assert (ep0[:, 1:6] == 0).all() and (ep0[:, 6] == -1).all()
    assert len(ep1) == 50 and (ep1[:, 1] == 0).all()  # 2.5 s at 20 Hz; the y attempt is gone
    assert ep1[-1, 6] == 1  # gripper closed
    assert "end: next" in log and "end: rerecord" in log and "end: time" in log
    assert "Hz achieved (target 20)" in log
    meta = DatasetMeta(out)
    assert meta.fps == 20 and len(meta.episodes) == 2


@pytest.mark.slow
def test_the_keyboard_dataset_trains(keyboard_dataset, tmp_path):
    out, _ = keyboard_dataset
    run = tmp_path / "run"
    cmd = [
        sys.executable, "-m", "embodied_mm.cli.main", "train", "--recipe", "vla-chunk",
        "--dataset", str(out), "--out", str(run), "--steps", "2", "--batch-size", "4",
        "--log-every", "1", "--warmup-steps", "1", "--save-every", "2",
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=REPO)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (run / "metrics.jsonl").read_text().count('"step"') >= 2


@pytest.mark.slow
def test_kill_9_loses_only_the_episode_in_progress_and_resume_continues(tmp_path):
    out = tmp_path / "ds"
    s = record(out, 3, "--episode-time-s", "1")
    try:
        s.expect("episode 0 saved", 120)
        s.expect("recording episode 1", 60)
        hold_key(s, b"s", 0.5)  # mid-episode
        os.killpg(s.proc.pid, signal.SIGKILL)
        s.proc.wait()
    finally:
        s.close()
    report = check_dataset(out)
    assert report.ok, report.errors
    assert report.episodes == 1
    kept = actions(out)[0]
    s = record(out, 2, "--episode-time-s", "1", "--resume")
    try:
        assert s.wait(120) == 0, s.text
        assert "recording episode 1 (seed 1)" in s.text
    finally:
        s.close()
    report = check_dataset(out)
    assert report.ok, report.errors
    assert report.episodes == 2
    np.testing.assert_array_equal(actions(out)[0], kept)  # the committed episode unchanged
