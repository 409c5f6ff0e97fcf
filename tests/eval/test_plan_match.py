"""``eval-plans``: exact match of the policy's plan text with the expert's phase labels on
held-out demo frames, per task and overall, with Wilson intervals."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from embodied_mm.cli.demo import shipped_checkpoint
from embodied_mm.cli.main import app
from embodied_mm.errors import UsageError
from embodied_mm.eval.plan_match import evaluate_plans, match_summary, plan_matches
from embodied_mm.eval.stats import wilson_interval
from embodied_mm.policies import make_policy
from tests.eval.conftest import HELD_OUT_SEED


def test_exact_match_ignores_only_surrounding_whitespace():
    labels = ["move above the red cube", "lift the red cube", "lift the red cube"]
    assert plan_matches(labels, labels) == [True, True, True]
    assert plan_matches([" move above the red cube ", "lift the cube", "Lift the red cube"],
                        labels) == [True, False, False]  # fmt: skip
    with pytest.raises(ValueError, match="2 predicted plans for 3 labels"):
        plan_matches(labels[:2], labels)


def test_the_summary_scores_none_all_and_some_with_wilson_intervals():
    assert match_summary([False] * 4) == {"frames": 4, "matches": 0, "exact_match": 0.0,
                                          "ci95": list(wilson_interval(0, 4))}  # fmt: skip
    assert match_summary([True] * 4)["exact_match"] == 1.0
    some = match_summary([True, False, True, True])
    assert some["exact_match"] == 0.75 and some["ci95"] == list(wilson_interval(3, 4))
    assert match_summary([])["exact_match"] is None


@pytest.mark.slow
def test_the_shipped_policy_names_every_phase_and_an_untrained_one_none(held_out, tmp_path):
    result = CliRunner().invoke(app, ["eval-plans", "--checkpoint", str(shipped_checkpoint()),
                                      "--dataset", str(held_out), "--episodes", "2", "--out",
                                      str(tmp_path / "shipped")])  # fmt: skip
    assert result.exit_code == 0, result.output
    info = json.loads((tmp_path / "shipped" / "plan_match.json").read_text())
    (task,) = info["tasks"]
    assert task["task"] == "ReachObject" and task["episodes"] == 2
    assert task["seeds"] == [HELD_OUT_SEED, HELD_OUT_SEED + 1]
    assert task["frames"] > 20 and task["exact_match"] == 1.0 and task["examples"] == []
    assert info["overall"]["frames"] == task["frames"]
    assert "ReachObject              plan exact match 100.0%" in result.stdout

    untrained = tmp_path / "untrained"
    make_policy("vla-chunk", size="tiny").save_pretrained(untrained)
    info = evaluate_plans(untrained, [held_out, held_out], 1, every=4)
    assert [t["exact_match"] for t in info["tasks"]] == [0.0, 0.0]
    assert info["overall"]["frames"] == 2 * info["tasks"][0]["frames"]
    assert info["overall"]["ci95"] == list(wilson_interval(0, info["overall"]["frames"]))
    assert info["tasks"][0]["examples"][0]["label"].startswith("move above the")


def test_a_dataset_without_plan_labels_is_refused_before_the_policy_loads(tmp_path):
    from embodied_mm.data.lerobot_format import build_features
    from embodied_mm.data.writer import DatasetWriter

    root = tmp_path / "no-plans"
    features = build_features(state_dim=15, action_dim=7, cameras={"front": (16, 16)}, fps=10,
                              codec="h264", with_plan=False)  # fmt: skip
    DatasetWriter.create(root, features, 10, robot_type="synthetic").close()
    with pytest.raises(UsageError, match="has no 'plan' column"):
        evaluate_plans(tmp_path / "no-policy-here", [root], 1)
