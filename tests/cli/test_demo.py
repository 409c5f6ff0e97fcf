"""``embodied-mm demo`` as the real command: what it prints is what happened.

The printed success count and interventions must equal summary.json; each episode's success
must agree with how the env ended it (a tabletop env terminates an episode the step its task
succeeds, so a failed one runs to the spec's step limit); each video holds the reset frame
and one frame per step. A run the shipped policy succeeds in and one it fails are both
checked, so a line that always says "success" cannot pass.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import av
import gymnasium as gym
import pytest

import embodied_mm.envs  # noqa: F401  (registers the ids)

PRINTED = re.compile(
    r"^(?P<env>\S+) on mujoco: success (?P<ok>\d+)/(?P<n>\d+), "
    r"safety interventions (?P<interventions>none|\{.*\}); video and summary.json in (?P<out>\S+)$"
)


def run_demo(out: Path, *args: str) -> tuple[re.Match, dict]:
    proc = subprocess.run(
        [sys.executable, "-m", "embodied_mm.cli.main", "demo", "--out", str(out), *args],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "the shipped default checkpoint" in proc.stdout  # not the scripted fallback
    lines = proc.stdout.strip().splitlines()
    printed = PRINTED.match(lines[-1])
    assert printed, lines[-1]
    return printed, json.loads((out / "summary.json").read_text())


def check_against_the_run(printed: re.Match, summary: dict, env_id: str) -> None:
    assert printed["env"] == env_id == summary["env_id"]
    assert int(printed["n"]) == summary["episodes"] == len(summary["per_episode"])
    assert int(printed["ok"]) == summary["successes"]
    assert summary["successes"] == sum(ep["success"] for ep in summary["per_episode"])
    said = {} if printed["interventions"] == "none" else ast.literal_eval(printed["interventions"])
    assert said == summary["interventions"]
    limit = gym.spec(env_id).max_episode_steps
    for ep in summary["per_episode"]:
        assert ep["steps"] <= limit
        if not ep["success"]:
            assert ep["steps"] == limit, ep  # only success ends an episode early
        with av.open(ep["video"]) as container:
            frames = sum(1 for _ in container.decode(video=0))
        assert frames == ep["steps"] + 1  # the reset frame and one per step


def test_demo_success_is_what_the_episode_did(tmp_path):
    printed, summary = run_demo(tmp_path)
    check_against_the_run(printed, summary, "embodied_mm/PickLift-v0")
    assert summary["successes"] == 1  # the shipped policy lifts the cube at seed 100000
    assert (
        summary["per_episode"][0]["steps"] < gym.spec("embodied_mm/PickLift-v0").max_episode_steps
    )


@pytest.mark.slow
def test_demo_reports_a_failed_episode_as_failed(tmp_path):
    """The shipped policy (trained to pick and lift) does not push the cube to its target at
    this seed: the line must say so, and the episode must have run to the step limit."""
    printed, summary = run_demo(tmp_path, "--env", "embodied_mm/PushCube-v0")
    check_against_the_run(printed, summary, "embodied_mm/PushCube-v0")
    assert printed["ok"] == "0" and summary["successes"] == 0
