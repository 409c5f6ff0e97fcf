"""Importing a robomimic HDF5 file built here with h5py."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from embodied_mm.data.check import check_dataset
from embodied_mm.data.robomimic import import_robomimic
from embodied_mm.data.synthetic import synthetic_frames
from embodied_mm.data.torch_dataset import LeRobotWindowDataset
from embodied_mm.features import ACTION, OBS_STATE, image_key


def make_robomimic(path, lengths):
    rng = np.random.default_rng(0)
    demos = {}
    with h5py.File(path, "w") as f:
        data = f.create_group("data")
        data.attrs["env_args"] = json.dumps({"env_name": "Lift", "type": 1})
        # demo_10 before demo_2 in string order: the importer must sort numerically
        for i, n in zip([0, 2, 10], lengths, strict=True):
            g = data.create_group(f"demo_{i}")
            d = {
                "actions": rng.normal(size=(n, 7)).astype(np.float64),
                "robot0_eef_pos": rng.normal(size=(n, 3)),
                "robot0_gripper_qpos": rng.normal(size=(n, 2)),
                "agentview_image": synthetic_frames(n, i, (32, 32)),
            }
            g.create_dataset("actions", data=d["actions"])
            for k in ("robot0_eef_pos", "robot0_gripper_qpos", "agentview_image"):
                g.create_dataset(f"obs/{k}", data=d[k])
            g.attrs["num_samples"] = n
            demos[i] = d
    return demos


def test_import_robomimic_round_trip(tmp_path):
    demos = make_robomimic(tmp_path / "lift.hdf5", [5, 7, 4])
    n = import_robomimic(tmp_path / "lift.hdf5", tmp_path / "ds", fps=20)
    assert n == 3
    assert check_dataset(tmp_path / "ds").ok
    ds = LeRobotWindowDataset(tmp_path / "ds")
    assert ds.meta.features[OBS_STATE]["names"] == [
        "robot0_eef_pos_0", "robot0_eef_pos_1", "robot0_eef_pos_2",
        "robot0_gripper_qpos_0", "robot0_gripper_qpos_1",
    ]  # fmt: skip
    assert ds.camera_keys == [image_key("agentview")]
    item = ds[5 + 3]  # demo_2 (second by number), frame 3
    d = demos[2]
    expected_state = np.concatenate([d["robot0_eef_pos"][3], d["robot0_gripper_qpos"][3]])
    np.testing.assert_array_equal(item[OBS_STATE].numpy(), expected_state.astype(np.float32))
    np.testing.assert_array_equal(item[ACTION].numpy(), d["actions"][3].astype(np.float32))
    assert item["task"] == "Lift demonstration"
    img = item[image_key("agentview")].permute(1, 2, 0).numpy() * 255
    assert np.abs(img - d["agentview_image"][3]).mean() < 6


def test_import_robomimic_bad_inputs(tmp_path):
    (tmp_path / "junk.hdf5").write_bytes(b"not hdf5")
    with pytest.raises(ValueError, match=r"junk\.hdf5"):
        import_robomimic(tmp_path / "junk.hdf5", tmp_path / "a")
    make_robomimic(tmp_path / "lift.hdf5", [3, 3, 3])
    with pytest.raises(ValueError, match="lacks \\['joint_pos'\\]"):
        import_robomimic(tmp_path / "lift.hdf5", tmp_path / "b", state_keys=["joint_pos"])
    with h5py.File(tmp_path / "empty.hdf5", "w") as f:
        f.create_group("data")
    with pytest.raises(ValueError, match="no 'data/demo_<i>' groups"):
        import_robomimic(tmp_path / "empty.hdf5", tmp_path / "c")
