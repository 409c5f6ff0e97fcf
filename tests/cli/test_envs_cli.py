"""``embodied-mm envs`` and ``embodied-mm rollout``, run as the real command in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import av

CLI = [sys.executable, "-m", "embodied_mm.cli.main"]
ENV = {**os.environ, "MUJOCO_GL": "egl"}


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, env=ENV, timeout=300)


def test_envs_lists_every_task_id():
    out = _run("envs")
    assert out.returncode == 0, out.stderr
    for env_id in (
        "embodied_mm/PickLift-v0",
        "embodied_mm/StackCube-v0",
        "embodied_mm/PushCube-v0",
    ):
        assert env_id in out.stdout


def test_rollout_writes_videos_and_a_summary(tmp_path):
    out = _run(
        "rollout", "--env", "embodied_mm/ReachObject-v0", "--engine", "mujoco",
        "--policy", "scripted", "--episodes", "2", "--video-dir", str(tmp_path), "--image-size", "64",
        "--video-camera", "policy",  # the policy's own view (the default is the 480x360 one)
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "success 2/2 = 100%" in out.stdout
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["episodes"] == 2 and summary["success_rate"] == 1.0
    for record in summary["per_episode"]:
        with av.open(record["video"]) as container:
            frames = list(container.decode(video=0))
        assert len(frames) == record["steps"] + 1  # the reset frame and one per step
        assert (frames[0].height, frames[0].width) == (64, 64)


def test_rollout_random_policy_and_clear_errors(tmp_path):
    out = _run(
        "rollout", "--env", "embodied_mm/ReachObject-v0", "--policy", "random", "--episodes", "1",
        "--image-size", "32", "--summary", str(tmp_path / "s.json"),
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert json.loads((tmp_path / "s.json").read_text())["policy"] == "random"
    bad_policy = _run("rollout", "--env", "embodied_mm/ReachObject-v0", "--policy", "nowhere/")
    assert bad_policy.returncode == 2
    assert "neither 'scripted', 'random' nor a checkpoint directory" in bad_policy.stderr
    bad_env = _run("rollout", "--env", "embodied_mm/Juggle-v0")
    assert bad_env.returncode == 2 and "embodied_mm/PickLift-v0" in bad_env.stderr
    bad_engine = _run("rollout", "--env", "embodied_mm/ReachObject-v0", "--engine", "ode")
    assert bad_engine.returncode == 2 and "ode" in bad_engine.stderr
