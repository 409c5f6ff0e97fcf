"""`embodied-mm deploy --teleop keyboard --record DIR` as a person runs it, on a real
pseudo-terminal: the shipped policy drives the PickLift sim, the person takes over with t,
lifts with r, hands back with t; deploy is then killed with SIGKILL mid-episode and resumed."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from embodied_mm.cli.main import app
from embodied_mm.data.check import check_dataset
from embodied_mm.features import INTERVENTION
from tests.teleop.pty_session import PYTHON, PtySession
from tests.teleop.test_record_keyboard import CHILD_ENV, REPO, hold_key

CHECKPOINT = REPO / "sim_assets" / "checkpoints" / "default"


def deploy_argv(out: Path, ds: Path, episodes: int, steps: int, *extra: str) -> list[str]:
    return [
        PYTHON, "-m", "embodied_mm.cli.main", "deploy", "--robot", "sim:embodied_mm/PickLift-v0",
        "--checkpoint", str(CHECKPOINT), "--mode", "open_loop", "--steps", str(steps),
        "--episodes", str(episodes), "--out", str(out), "--record", str(ds), *extra,
    ]  # fmt: skip


def frames(root: Path) -> pd.DataFrame:
    df = pd.concat(pd.read_parquet(p) for p in sorted(root.glob("data/*/*.parquet")))
    return df.sort_values("index").reset_index(drop=True)


@pytest.mark.slow
def test_a_deploy_run_with_an_intervention_then_kill_9_then_resume(tmp_path):
    ds, out = tmp_path / "ds", tmp_path / "run"
    s = PtySession(deploy_argv(out, ds, 3, 80, "--teleop", "keyboard"), env=CHILD_ENV, cwd=REPO)
    try:
        s.expect("interventions", 180)  # the status line: the policy drives
        s.type(b"t")
        s.expect("person takes over at step", 30)
        hold_key(s, b"r", 0.6)  # up, 1 cm a step
        s.type(b"t")
        s.expect("policy resumes at step", 30)
        s.expect("episode 0 saved", 60)
        time.sleep(1.0)  # into episode 1
        os.killpg(s.proc.pid, signal.SIGKILL)
        s.proc.wait()
    finally:
        s.close()
    log = s.text
    took = int(re.search(r"person takes over at step (\d+)", log).group(1))
    back = int(re.search(r"policy resumes at step (\d+)", log).group(1))
    report = check_dataset(ds)
    assert report.ok, report.errors
    assert report.episodes == 1  # the killed episode is lost, the committed one intact
    df = frames(ds)
    flags = df[INTERVENTION].to_numpy()
    np.testing.assert_array_equal(np.flatnonzero(flags), np.arange(took, back))
    logged = [json.loads(line) for line in (out / "episode_000" / "run.jsonl").open()]
    assert [int(r["person"]) for r in logged if "step" in r] == flags.tolist()
    action = np.stack(df["action"].to_numpy())
    person = action[flags == 1]
    assert (person[:, 2] == 0.25).sum() >= 5  # r held: z up at the keyboard's step
    np.testing.assert_array_equal(person[:, [0, 1, 3, 4, 5]], 0)  # nothing else typed
    # the take-over step holds the policy's gripper; the keys' gripper starts on its side
    left = action[took - 1, 6]
    assert person[0, 6] == left
    np.testing.assert_array_equal(person[1:, 6], 1.0 if left > 0 else -1.0)
    policy = action[flags == 0]
    assert (np.abs(policy[:, :6]).sum(axis=1) > 0).mean() > 0.9  # the policy's own motion
    kept = action.copy()

    done = subprocess.run(
        deploy_argv(out, ds, 1, 10, "--resume"), capture_output=True, text=True, timeout=300,
        cwd=REPO, env={**os.environ, **CHILD_ENV}, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    report = check_dataset(ds)
    assert report.ok, report.errors
    assert report.episodes == 2
    df = frames(ds)
    ep0 = df[df["episode_index"] == 0]
    np.testing.assert_array_equal(np.stack(ep0["action"].to_numpy()), kept)
    assert (df[df["episode_index"] == 1][INTERVENTION] == 0).all()  # no --teleop: the policy
    rows = pd.read_parquet(next(ds.glob("meta/episodes/*/*.parquet")))
    assert sorted(rows["seed"].tolist()) == [0, 1]  # the resumed episode's seed follows on
    info = CliRunner().invoke(app, ["dataset", "info", str(ds)])
    assert re.search(r"intervention\s+uint8\s+\[1\]", info.output), info.output
    assert f"interventions: {back - took} frames driven by a person" in info.output
