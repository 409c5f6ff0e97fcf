"""Windows with LeRobot's delta_timestamps semantics, padding at episode boundaries."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from embodied_mm.data.torch_dataset import (
    LeRobotWindowDataset,
    build_window_dataset,
    chunk_delta_timestamps,
)
from embodied_mm.data.video import VideoDecodeError
from embodied_mm.features import ACTION, OBS_STATE, image_key
from tests.data.conftest import FPS, synthetic_episode, synthetic_features

FRONT = image_key("front")


def test_action_chunk_and_history_with_padding(small_dataset):
    root, episodes = small_dataset  # lengths 12, 7, 15
    deltas = chunk_delta_timestamps(FPS, n_obs_steps=2, chunk_size=4, obs_keys=[OBS_STATE, FRONT])
    ds = LeRobotWindowDataset(root, deltas)
    ep1 = episodes[1]

    first = ds[12]  # frame 0 of episode 1: history step t-1 is before the episode
    assert first[OBS_STATE].shape == (2, 15) and first[ACTION].shape == (4, 8)
    assert first[FRONT].shape == (2, 3, 32, 48)
    assert first[f"{OBS_STATE}_is_pad"].tolist() == [True, False]
    assert first[f"{FRONT}_is_pad"].tolist() == [True, False]
    np.testing.assert_array_equal(first[OBS_STATE].numpy(), ep1.state[[0, 0]])  # clamped copy
    torch.testing.assert_close(first[FRONT][0], first[FRONT][1])
    np.testing.assert_array_equal(first[ACTION].numpy(), ep1.action[0:4])
    assert first["action_is_pad"].tolist() == [False] * 4

    last = ds[12 + 5]  # frame 5 of 7: actions 5, 6, then two pads repeating frame 6
    assert last["action_is_pad"].tolist() == [False, False, True, True]
    np.testing.assert_array_equal(last[ACTION].numpy(), ep1.action[[5, 6, 6, 6]])
    np.testing.assert_array_equal(last[OBS_STATE].numpy(), ep1.state[[4, 5]])
    assert last[f"{OBS_STATE}_is_pad"].tolist() == [False, False]
    # frames of the window are the episode's own, never the next episode's
    assert int(last["episode_index"]) == 1 and last["task"] == "push"


def test_history_images_are_consecutive_frames(small_dataset):
    root, episodes = small_dataset
    ds = LeRobotWindowDataset(root, {FRONT: [-0.2, -0.1, 0.0]})
    item = ds[5]  # episode 0, frame 5 -> frames 3, 4, 5
    expected = episodes[0].images[FRONT][[3, 4, 5]].astype(np.float32) / 255
    got = item[FRONT].permute(0, 2, 3, 1).numpy()
    assert np.abs(got - expected).mean(axis=(1, 2, 3)).max() < 6 / 255


def test_delta_timestamps_are_validated(small_dataset):
    root, _ = small_dataset
    with pytest.raises(ValueError, match="not multiples of 1/fps"):
        LeRobotWindowDataset(root, {ACTION: [0.0, 0.05]})
    with pytest.raises(ValueError, match="unknown features"):
        LeRobotWindowDataset(root, {"observation.depth": [0.0]})
    with pytest.raises(ValueError, match="cannot window text features"):
        LeRobotWindowDataset(root, {"plan": [0.0]})
    with pytest.raises(ValueError, match=r"episodes \[7\]"):
        LeRobotWindowDataset(root, episodes=[7])


def test_episode_subset_and_build_helper(small_dataset):
    root, _episodes = small_dataset
    ds = build_window_dataset(root, n_obs_steps=1, chunk_size=3, episodes=[2])
    assert len(ds) == 15
    item = ds[14]
    assert int(item["episode_index"]) == 2 and item[ACTION].shape == (3, 8)
    assert item[OBS_STATE].shape == (15,) and item[FRONT].shape == (3, 32, 48)
    assert item["action_is_pad"].tolist() == [False, True, True]


def test_dataloader_with_two_workers_batches_windows(small_dataset):
    root, _episodes = small_dataset
    ds = build_window_dataset(root, n_obs_steps=2, chunk_size=4)
    ds[0]  # opens decoders in the parent: workers must not reuse them
    loader = DataLoader(
        ds, batch_size=8, shuffle=True, num_workers=2, generator=torch.Generator().manual_seed(0)
    )
    seen = []
    for batch in loader:
        assert batch[ACTION].shape[1:] == (4, 8) and batch[FRONT].shape[1:] == (2, 3, 32, 48)
        assert isinstance(batch["task"], list) and isinstance(batch["plan"], list)
        seen += batch["index"].tolist()
    assert sorted(seen) == list(range(len(ds)))


def test_tolerance_violation_names_the_file(small_dataset):
    root, _ = small_dataset
    ds = LeRobotWindowDataset(root)
    path, _ = ds.meta.episodes[0].videos[FRONT]
    decoder = ds._decoders.get(path)
    with pytest.raises(VideoDecodeError, match=r"file-000\.mp4.*nearest decoded frame"):
        decoder.frames_at([0.05], tolerance_s=1e-4)  # between frames at 10 fps
    with pytest.raises(VideoDecodeError, match=r"file-000\.mp4.*video ends"):
        decoder.frames_at([5.0])


def test_images_inside_parquet_are_refused_by_name(small_dataset):
    import json

    root, _ = small_dataset
    info = json.loads((root / "meta/info.json").read_text())
    info["features"]["observation.images.top"] = {"dtype": "image", "shape": [8, 8, 3]}
    (root / "meta/info.json").write_text(json.dumps(info))
    with pytest.raises(
        ValueError, match=r"observation\.images\.top.*only cameras stored as videos"
    ):
        LeRobotWindowDataset(root)


def test_final_state_is_the_last_state_of_each_samples_episode(small_dataset):
    from embodied_mm.features import FINAL_STATE

    root, episodes = small_dataset  # lengths 12, 7, 15
    ds = build_window_dataset(root, chunk_size=2, final_state=True)
    starts = np.cumsum([0] + [len(e) for e in episodes])
    for e, ep in enumerate(episodes):
        for row in (starts[e], starts[e + 1] - 1):
            np.testing.assert_array_equal(ds[int(row)][FINAL_STATE].numpy(), ep.state[-1])
    assert FINAL_STATE not in build_window_dataset(root, chunk_size=2)[0]


def test_first_phase_state_is_the_last_state_of_the_episodes_first_plan_phase(small_dataset):
    from embodied_mm.features import FIRST_PHASE_STATE

    root, episodes = small_dataset  # plans "phase {t // 4} of episode ...": phase 0 is t < 4
    ds = build_window_dataset(root, chunk_size=2, final_state=True)
    starts = np.cumsum([0] + [len(e) for e in episodes])
    for e, ep in enumerate(episodes):
        assert ep.plan[3] != ep.plan[4]
        for row in (starts[e], starts[e + 1] - 1):
            np.testing.assert_array_equal(ds[int(row)][FIRST_PHASE_STATE].numpy(), ep.state[3])


def test_phase_end_state_is_the_last_state_of_each_frames_plan_phase(tmp_path):
    from embodied_mm.data.writer import DatasetWriter
    from embodied_mm.features import PHASE_END_STATE

    root = tmp_path / "ds"
    episodes = [synthetic_episode(n, seed=i) for i, n in enumerate([10, 6])]
    # Episode 0 ends in the phase episode 1 starts with: the phase still ends with episode 0.
    episodes[0].plan = ["reach"] * 3 + ["grasp"] * 5 + ["lift"] * 2
    episodes[1].plan = ["lift"] * 4 + ["reach"] * 2
    with DatasetWriter.create(root, synthetic_features(), FPS, robot_type="synthetic") as writer:
        for ep in episodes:
            writer.add_episode(ep)
    ds = build_window_dataset(root, chunk_size=2, final_state=True)
    last = [[2, 2, 2, 7, 7, 7, 7, 7, 9, 9], [3, 3, 3, 3, 5, 5]]  # per frame: its phase's end
    rows = [(e, t) for e, n in enumerate([10, 6]) for t in range(n)]
    for row, (e, t) in enumerate(rows):
        want = episodes[e].state[last[e][t]]
        np.testing.assert_array_equal(ds[row][PHASE_END_STATE].numpy(), want)
