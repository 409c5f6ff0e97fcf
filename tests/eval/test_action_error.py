"""``eval-actions``: the policy's first action against the expert's, per dim, on demo frames."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from embodied_mm.cli.demo import shipped_checkpoint
from embodied_mm.cli.main import app
from embodied_mm.data.torch_dataset import LeRobotWindowDataset
from embodied_mm.errors import UsageError
from embodied_mm.eval.action_error import dim_errors, evaluate_actions
from embodied_mm.features import ACTION
from embodied_mm.runtime.inference import load_policy
from embodied_mm.train.trainer import collate


def test_the_spread_is_the_error_of_the_median_and_signs_count_only_clear_targets():
    target = np.array([[1.0, 0.05], [-1.0, 0.0], [1.0, -0.05]])  # dim 1 never clearly non-zero
    r = dim_errors(np.zeros_like(target), target)
    assert r["mean_abs_error"] == pytest.approx([1.0, 0.1 / 3])
    assert r["spread"] == pytest.approx([2 / 3, 0.1 / 3])  # medians 1 and 0
    assert r["sign_agreement"] == [0.0, None]  # sign(0) matches neither +1 nor -1
    same = dim_errors(np.array([[0.5, 0.0], [-0.2, 0.0], [0.1, 0.0]]), target)
    assert same["sign_agreement"][0] == 1.0


def test_the_shipped_policy_has_learnt_where_to_move_on_held_out_reach_demos(held_out, tmp_path):
    result = CliRunner().invoke(app, ["eval-actions", "--checkpoint", str(shipped_checkpoint()),
                                      "--dataset", str(held_out), "--episodes", "1",
                                      # one frame per batch, as below: the same kernels on
                                      # any CPU, whatever batch shapes they are fastest at
                                      "--batch-size", "1", "--out", str(tmp_path)])  # fmt: skip
    assert result.exit_code == 0, result.output
    info = json.loads((tmp_path / "action_error.json").read_text())
    (task,) = info["tasks"]
    assert task["task"] == "ReachObject" and task["episodes"] == 1
    assert info["action_names"][:3] == ["dx", "dy", "dz"]
    every = task["all_frames"]
    # it drives ReachObject to the cube: the position dims are far below the spread
    for d in range(3):
        assert every["mean_abs_error"][d] < 0.5 * every["spread"][d], (d, every)
    # with one episode, the first-frame figure is that frame's own error
    data = LeRobotWindowDataset(held_out, {}, episodes=[0], image_format="uint8")
    batch = collate([data[0]])
    expert = batch.pop(ACTION).numpy()[0]
    own = load_policy(shipped_checkpoint()).predict_chunk(batch)[0, 0].numpy()
    np.testing.assert_allclose(task["first_frames"]["mean_abs_error"], np.abs(own - expert),
                               atol=1e-5)  # fmt: skip
    assert "ReachObject          first_frames dx" in result.stdout


def test_bad_arguments_are_one_line_errors(held_out, tmp_path):
    with pytest.raises(UsageError, match="--episodes and --batch-size must be >= 1"):
        evaluate_actions(shipped_checkpoint(), [held_out], 0)
    with pytest.raises(UsageError, match="at least one --dataset"):
        evaluate_actions(shipped_checkpoint(), [], 1)
    with pytest.raises(UsageError) as e:
        evaluate_actions(shipped_checkpoint(), [tmp_path], 1)
    assert "\n" not in str(e.value)
