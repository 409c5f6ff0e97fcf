"""Robot layouts: named state dims replace the sim's index constants and the goal dims."""

import pytest
import torch

from embodied_mm.model.modeling_vla import VLAPolicy
from embodied_mm.processor.robots import RobotLayout, goal_dims_of, robot_layout, state_names_of
from tests.model.helpers import tiny_config


def test_the_sim_panda_layout():
    panda = robot_layout("panda")
    assert panda.state_dim == 15
    assert panda.dims("joints") == list(range(7)) and panda.dims("gripper") == [7]
    assert panda.slice("tcp_xyz") == slice(8, 11) and panda.dims("goal") == [8, 9]
    with pytest.raises(KeyError, match=r"no state group 'elbow'; known: \['goal', 'gripper'"):
        panda.dims("elbow")
    with pytest.raises(ValueError, match="groups name unknown state dims"):
        RobotLayout("arm", ("a", "b"), {"goal": ("c",)})


def test_state_names_come_from_the_feature_or_the_robot_type():
    panda = list(robot_layout("panda").state_names)
    assert state_names_of({"shape": [15], "names": None}, "panda") == panda
    assert state_names_of({"shape": [3], "names": ["x", "y", "z"]}, "panda") == ["x", "y", "z"]
    assert state_names_of({"shape": [6], "names": None}, "panda") is None  # sizes disagree
    assert state_names_of({"shape": [15], "names": None}, "synthetic") is None
    assert goal_dims_of(panda) == [8, 9] and goal_dims_of(["x", "y"]) is None


def test_the_goal_head_predicts_the_layouts_goal_dims_and_keeps_them_when_saved(tmp_path):
    names = list(robot_layout("panda").state_names)
    cfg = tiny_config(goal_loss_weight=1.0, state_dim=15)
    assert cfg.goal_dims is None
    policy = VLAPolicy(cfg, device="cpu", state_names=names)
    assert policy.goal_dims == [8, 9] and policy.goal_head[-1].out_features == 2
    policy.save_pretrained(tmp_path)
    loaded = VLAPolicy.from_pretrained(tmp_path, device="cpu")
    assert loaded.goal_dims == [8, 9]
    torch.testing.assert_close(loaded.goal_head[-1].weight, policy.goal_head[-1].weight)
    unknown = VLAPolicy(cfg, device="cpu")  # no layout: every state dim, as before
    assert unknown.goal_dims == list(range(15))


def test_the_served_metadata_names_the_state_layout():
    from embodied_mm.runtime.inference import LocalPolicy

    names = list(robot_layout("panda").state_names)
    policy = VLAPolicy(tiny_config(state_dim=15), device="cpu", state_names=names)
    assert LocalPolicy(policy).metadata()["state_names"] == names
    assert LocalPolicy(VLAPolicy(tiny_config(), device="cpu")).metadata()["state_names"] is None
