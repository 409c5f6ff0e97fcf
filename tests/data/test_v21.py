"""Reading a LeRobot v2.1 dataset (one parquet and one mp4 per episode, JSONL metadata)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from embodied_mm.data.check import check_dataset
from embodied_mm.data.lerobot_format import video_feature
from embodied_mm.data.stats import image_stats, stats_to_json, vector_stats
from embodied_mm.data.torch_dataset import LeRobotWindowDataset
from embodied_mm.data.video import encode_video
from embodied_mm.features import ACTION, OBS_STATE, image_key
from tests.data.conftest import synthetic_episode

FPS = 10
TASKS = ["open the drawer", "close the drawer"]


def make_v21(root: Path, lengths: list[int]) -> list:
    """The v2.1 layout as LeRobot 0.2/0.3 wrote it, with plain (variable) list columns."""
    cam = image_key("top")
    episodes, index = [], 0
    (root / "meta").mkdir(parents=True)
    ep_lines, stats_lines = [], []
    for e, n in enumerate(lengths):
        ep = synthetic_episode(n, seed=10 + e, task=TASKS[e % 2])
        frames = ep.images[image_key("front")]
        video = root / f"videos/chunk-000/{cam}/episode_{e:06d}.mp4"
        video.parent.mkdir(parents=True, exist_ok=True)
        encode_video(frames, video, FPS)
        data = root / f"data/chunk-000/episode_{e:06d}.parquet"
        data.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(
            pa.table(
                {
                    OBS_STATE: pa.array(ep.state.tolist(), type=pa.list_(pa.float32())),
                    ACTION: pa.array(ep.action.tolist(), type=pa.list_(pa.float32())),
                    "timestamp": pa.array(np.arange(n) / FPS, type=pa.float32()),
                    "frame_index": pa.array(np.arange(n), type=pa.int64()),
                    "episode_index": pa.array([e] * n, type=pa.int64()),
                    "index": pa.array(index + np.arange(n), type=pa.int64()),
                    "task_index": pa.array([e % 2] * n, type=pa.int64()),
                }
            ),
            data,
        )
        index += n
        ep_lines.append({"episode_index": e, "tasks": [TASKS[e % 2]], "length": n})
        stats = {
            OBS_STATE: vector_stats(ep.state),
            ACTION: vector_stats(ep.action),
            cam: image_stats(frames),
        }
        stats_lines.append({"episode_index": e, "stats": stats_to_json(stats)})
        episodes.append(ep)
    info = {
        "codebase_version": "v2.1",
        "robot_type": "koch",
        "total_episodes": len(lengths),
        "total_frames": index,
        "total_tasks": 2,
        "total_videos": len(lengths),
        "total_chunks": 1,
        "chunks_size": 1000,
        "fps": FPS,
        "splits": {"train": f"0:{len(lengths)}"},
        "data_path": "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet",
        "video_path": "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4",
        "features": {
            OBS_STATE: {"dtype": "float32", "shape": [15], "names": None},
            ACTION: {"dtype": "float32", "shape": [8], "names": None},
            cam: video_feature(32, 48, FPS, "h264", "yuv420p"),
            "timestamp": {"dtype": "float32", "shape": [1], "names": None},
            "frame_index": {"dtype": "int64", "shape": [1], "names": None},
            "episode_index": {"dtype": "int64", "shape": [1], "names": None},
            "index": {"dtype": "int64", "shape": [1], "names": None},
            "task_index": {"dtype": "int64", "shape": [1], "names": None},
        },
    }
    (root / "meta/info.json").write_text(json.dumps(info))
    jsonl = lambda rows: "".join(json.dumps(r) + "\n" for r in rows)  # noqa: E731
    (root / "meta/episodes.jsonl").write_text(jsonl(ep_lines))
    (root / "meta/tasks.jsonl").write_text(
        jsonl([{"task_index": i, "task": t} for i, t in enumerate(TASKS)])
    )
    (root / "meta/episodes_stats.jsonl").write_text(jsonl(stats_lines))
    return episodes


def test_reads_v21_windows_and_stats(tmp_path):
    root = tmp_path / "v21"
    episodes = make_v21(root, [9, 6])
    ds = LeRobotWindowDataset(root, {ACTION: [0.0, 0.1, 0.2]})
    assert ds.meta.version == "v2.1" and len(ds) == 15
    item = ds[9 + 4]  # episode 1, frame 4 of 6
    np.testing.assert_array_equal(item[OBS_STATE].numpy(), episodes[1].state[4])
    np.testing.assert_array_equal(item[ACTION].numpy(), episodes[1].action[[4, 5, 5]])
    assert item["action_is_pad"].tolist() == [False, False, True]
    assert item["task"] == "close the drawer" and "plan" not in item
    img = item[image_key("top")].permute(1, 2, 0).numpy() * 255
    assert np.abs(img - episodes[1].images[image_key("front")][4]).mean() < 6

    all_state = np.concatenate([e.state for e in episodes])
    np.testing.assert_allclose(ds.stats[OBS_STATE]["mean"], all_state.mean(0), atol=1e-6)
    np.testing.assert_allclose(ds.stats[OBS_STATE]["std"], all_state.std(0), atol=1e-6)
    assert ds.stats[image_key("top")]["mean"].shape == (3, 1, 1)
    report = check_dataset(root)
    assert report.ok, report.errors
    assert (report.episodes, report.frames, report.videos_checked) == (2, 15, 2)
