"""``eval-goals``: the goal head's error on first frames against the spread of the targets."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from embodied_mm.cli.demo import shipped_checkpoint
from embodied_mm.cli.main import app
from embodied_mm.errors import UsageError
from embodied_mm.eval.goal_error import evaluate_goals, waypoint_errors
from embodied_mm.policies import make_policy


def test_errors_are_euclidean_and_the_spread_is_the_mean_answers_error():
    target = np.array([[0.0, 0.0], [0.2, 0.0]])
    r = waypoint_errors(np.array([[0.0, 0.3], [0.2, 0.4]]), target)
    assert r == pytest.approx({"mean_error": 0.35, "median_error": 0.35, "spread": 0.1})
    perfect = waypoint_errors(target, target)
    assert perfect["mean_error"] == 0.0 and perfect["spread"] == pytest.approx(0.1)


@pytest.mark.slow
def test_the_shipped_policy_locates_the_named_cube_in_held_out_scenes(held_out, tmp_path):
    result = CliRunner().invoke(app, ["eval-goals", "--checkpoint", str(shipped_checkpoint()),
                                      "--dataset", str(held_out), "--episodes", "2",
                                      "--out", str(tmp_path)])  # fmt: skip
    assert result.exit_code == 0, result.output
    info = json.loads((tmp_path / "goal_error.json").read_text())
    (task,) = info["tasks"]
    assert task["task"] == "ReachObject" and task["episodes"] == 2
    assert info["goal_dims"] == [8, 9]  # the gripper's x, y
    final = task["waypoints"]["final"]
    # published: 8 mm on 20 held-out episodes (docs/training.md); a floor well above it
    assert final["mean_error"] < 0.03, final
    assert "ReachObject              final" in result.stdout


def test_a_policy_without_a_goal_head_is_refused(held_out, tmp_path):
    make_policy("vla-chunk", size="tiny").save_pretrained(tmp_path / "no-goal")
    with pytest.raises(UsageError, match="has no goal head"):
        evaluate_goals(tmp_path / "no-goal", [held_out], 1)
    with pytest.raises(UsageError, match="--episodes and --batch-size must be >= 1"):
        evaluate_goals(tmp_path / "no-goal", [held_out], 0)
