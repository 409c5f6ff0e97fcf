"""Recording the real environments with their scripted experts, and surviving kill -9."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from embodied_mm.data.check import check_dataset
from embodied_mm.data.recorder import GymExpertSource, record
from embodied_mm.data.torch_dataset import LeRobotWindowDataset
from embodied_mm.features import ACTION, OBS_STATE, PLAN

ENV_ID = "embodied_mm/PickLift-v0"
# h264 yuv420p at crf 20 on 128² renders measures 31.7-32.4 dB worst-frame PSNR (chroma
# subsampling of the checkered table dominates); 30 dB is the floor we accept.
MIN_PSNR_DB = 30.0


class _Tap:
    """Wraps a real source and keeps every episode it produced, renders included."""

    def __init__(self, engine: str, kept: list) -> None:
        self.src = GymExpertSource(ENV_ID, engine)
        self.fps, self.robot_type, self.kept = self.src.fps, self.src.robot_type, kept
        self.state_names, self.action_names = self.src.state_names, self.src.action_names

    def episode(self, seed: int):
        ep = self.src.episode(seed)
        self.kept.append(ep)
        return ep

    def close(self) -> None:
        self.src.close()


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["mujoco", "pybullet"])
def test_round_trip_real_env(tmp_path: Path, engine: str):
    kept: list = []
    record(lambda: _Tap(engine, kept), tmp_path / "ds", 3, progress=False)
    episodes = [ep for ep in kept if ep.success]
    assert len(episodes) == 3
    report = check_dataset(tmp_path / "ds")
    assert report.ok, report.errors
    ds = LeRobotWindowDataset(tmp_path / "ds")
    assert ds.fps == 20 and len(ds) == sum(len(e) for e in episodes)
    assert ds.meta.features[ACTION]["names"][-1] == "gripper"  # the env's action fields
    i = 0
    for e, ep in enumerate(episodes):
        for t in range(len(ep)):
            item = ds[i]
            i += 1
            np.testing.assert_array_equal(item[OBS_STATE].numpy(), ep.state[t])
            np.testing.assert_array_equal(item[ACTION].numpy(), ep.action[t])
            assert item["task"] == ep.task and item[PLAN] == ep.plan[t]
            assert int(item["episode_index"]) == e
            for key, frames in ep.images.items():
                decoded = item[key].permute(1, 2, 0).numpy() * 255
                mse = float(np.mean((decoded - frames[t]) ** 2))
                psnr = 10 * np.log10(255**2 / max(mse, 1e-12))
                assert psnr >= MIN_PSNR_DB, (key, e, t, psnr)


def _info(root: Path) -> dict:
    try:
        return json.loads((root / "meta/info.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


@pytest.mark.slow
def test_kill_9_mid_episode_leaves_a_valid_dataset_and_resume_continues(tmp_path: Path):
    root = tmp_path / "ds"
    cmd = [
        sys.executable,
        "-m",
        "embodied_mm.cli.main",
        "record",
        "--env",
        ENV_ID,
        "--engine",
        "mujoco",
        "--episodes",
        "50",
        "--out",
        str(root),
    ]
    env = {**os.environ, "MUJOCO_GL": "egl"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while _info(root).get("total_episodes", 0) < 2:
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "recording made no progress"
            time.sleep(0.05)
        time.sleep(0.2)  # an episode takes ~1 s: this lands in the middle of the next one
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL

    committed = _info(root)["total_episodes"]
    assert 2 <= committed < 50
    report = check_dataset(root)
    assert report.ok, report.errors
    assert report.episodes == committed
    assert len(LeRobotWindowDataset(root)) == _info(root)["total_frames"]

    target = committed + 2
    out = subprocess.run(
        [*cmd[:-4], "--episodes", str(target), "--out", str(root), "--resume"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert _info(root)["total_episodes"] == target
    report = check_dataset(root)
    assert report.ok, report.errors
    assert not (root / ".staging").exists()
