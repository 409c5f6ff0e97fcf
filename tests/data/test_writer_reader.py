"""Round trip through the v3.0 writer and reader on real parquet and mp4 files."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from embodied_mm.data import lerobot_format as fmt
from embodied_mm.data.check import check_dataset
from embodied_mm.data.reader import DatasetMeta, load_frames
from embodied_mm.data.stats import vector_stats
from embodied_mm.data.torch_dataset import LeRobotWindowDataset
from embodied_mm.data.writer import DatasetWriter, stage_episode
from embodied_mm.dirlock import LOCK_NAME, DirectoryLockedError
from embodied_mm.features import ACTION, OBS_STATE, PLAN, image_key
from tests.data.conftest import (
    FPS,
    crash_at_the_commit_point,
    episodes_table,
    synthetic_episode,
    synthetic_features,
    write_synthetic,
)

# yuv420p + crf 20 on our smooth synthetic frames: mean error a few levels of 255.
CODEC_MEAN_TOL = 6.0


def test_layout_is_lerobot_v30(small_dataset):
    root, _episodes = small_dataset
    info = json.loads((root / "meta/info.json").read_text())
    assert info["codebase_version"] == "v3.0"
    assert (info["total_episodes"], info["total_frames"], info["total_tasks"]) == (3, 34, 2)
    assert info["fps"] == FPS and info["chunks_size"] == 1000
    assert info["data_path"] == "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
    assert info["video_path"].startswith("videos/{video_key}/chunk-{chunk_index:03d}/")
    front = info["features"][image_key("front")]
    assert front["dtype"] == "video" and front["shape"] == [32, 48, 3]
    assert front["info"]["video.fps"] == FPS and front["info"]["video.codec"] == "h264"
    assert info["features"][PLAN]["dtype"] == "string"
    # v3.0 packs episodes: one data file and one video per camera hold all three
    assert [p.relative_to(root).as_posix() for p in sorted(root.glob("data/*/*"))] == [
        "data/chunk-000/file-000.parquet"
    ]
    for cam in ("front", "wrist"):
        videos = sorted((root / f"videos/observation.images.{cam}").glob("*/*"))
        assert [p.name for p in videos] == ["file-000.mp4"]
    tasks = pd.read_parquet(root / "meta/tasks.parquet")
    assert dict(zip(tasks.index, tasks["task_index"], strict=True)) == {
        "lift the red cube": 0,
        "push": 1,
    }
    eps = pd.read_parquet(root / "meta/episodes/chunk-000/file-000.parquet")
    assert eps["length"].tolist() == [12, 7, 15]
    assert eps["dataset_from_index"].tolist() == [0, 12, 19]
    assert eps["dataset_to_index"].tolist() == [12, 19, 34]
    assert list(eps["tasks"].iloc[1]) == ["push"]
    assert eps["data/file_index"].tolist() == [0, 0, 0]
    front_key = f"videos/{image_key('front')}"
    assert eps[f"{front_key}/from_timestamp"].tolist() == pytest.approx([0.0, 1.2, 1.9])
    assert eps[f"{front_key}/to_timestamp"].tolist() == pytest.approx([1.2, 1.9, 3.4])
    assert "stats/action/mean" in eps.columns
    data = pq.read_table(root / "data/chunk-000/file-000.parquet")
    assert data.column_names[:2] == [OBS_STATE, ACTION]
    assert data["index"].to_pylist() == list(range(34))
    assert data["episode_index"].to_pylist() == [0] * 12 + [1] * 7 + [2] * 15
    # timestamps restart in each episode, as in LeRobot
    assert data["timestamp"].to_pylist()[12:19] == pytest.approx([i / FPS for i in range(7)])


def test_round_trip_exact_numbers_and_frames_within_codec_tolerance(small_dataset):
    root, episodes = small_dataset
    ds = LeRobotWindowDataset(root)
    assert len(ds) == sum(len(e) for e in episodes)
    i = 0
    for e, ep in enumerate(episodes):
        for t in range(len(ep)):
            item = ds[i]
            assert int(item["episode_index"]) == e and int(item["frame_index"]) == t
            np.testing.assert_array_equal(item[OBS_STATE].numpy(), ep.state[t])
            np.testing.assert_array_equal(item[ACTION].numpy(), ep.action[t])
            assert item["task"] == ep.task and item[PLAN] == ep.plan[t]
            for key, frames in ep.images.items():
                img = item[key]  # (3, H, W) float32 in [0, 1]
                assert img.shape == (3, 32, 48) and img.dtype.is_floating_point
                assert float(img.min()) >= 0.0 and float(img.max()) <= 1.0
                decoded = (img.permute(1, 2, 0).numpy() * 255).round()
                err = np.abs(decoded - frames[t].astype(np.float32)).mean()
                assert err < CODEC_MEAN_TOL, (key, e, t, err)
                # the right frame, not a neighbour: neighbours differ far more than the codec
                if t + 1 < len(ep):
                    assert err < np.abs(decoded - frames[t + 1]).mean()
            i += 1


def test_stats_json_layout_and_values(small_dataset):
    root, episodes = small_dataset
    stats = json.loads((root / "meta/stats.json").read_text())
    for key in (OBS_STATE, ACTION, image_key("front"), image_key("wrist")):
        assert {"mean", "std", "min", "max", "q01", "q99", "count"} <= set(stats[key])
    assert np.shape(stats[image_key("front")]["mean"]) == (3, 1, 1)
    assert len(stats[OBS_STATE]["mean"]) == 15
    all_actions = np.concatenate([e.action for e in episodes])
    direct = vector_stats(all_actions)
    for name in ("mean", "std", "min", "max"):
        np.testing.assert_allclose(stats[ACTION][name], direct[name], rtol=1e-6, atol=1e-6)
    assert stats[ACTION]["count"] == [len(all_actions)]
    img_mean = np.asarray(stats[image_key("front")]["mean"]).reshape(3)
    pixels = np.concatenate([e.images[image_key("front")] for e in episodes]) / 255.0
    np.testing.assert_allclose(img_mean, pixels.reshape(-1, 3).mean(0), atol=0.02)


def test_reader_ignores_uncommitted_rows(tmp_path):
    """Metadata rows past info.json's total_episodes (a commit cut short) are not episodes."""
    root = tmp_path / "ds"
    w = DatasetWriter.create(root, synthetic_features(), FPS, "synthetic")
    w.add_episode(synthetic_episode(5, 0))
    w.add_episode(synthetic_episode(6, 1))
    info = json.loads((root / fmt.INFO_PATH).read_text())
    info["total_episodes"], info["total_frames"] = 1, 5
    (root / fmt.INFO_PATH).write_text(json.dumps(info))
    meta = DatasetMeta(root)
    assert [e.episode_index for e in meta.episodes] == [0]
    assert len(load_frames(meta)) == 5


def test_writer_rejects_mismatched_episode_and_existing_dataset(tmp_path):
    root = tmp_path / "ds"
    w = DatasetWriter.create(root, synthetic_features(), FPS, "synthetic")
    bad = synthetic_episode(4, 0)
    bad.state = bad.state[:, :3]
    with pytest.raises(ValueError, match=r"observation\.state"):
        w.add_episode(bad)
    w.close()
    with pytest.raises(FileExistsError, match="already holds a dataset"):
        DatasetWriter.create(root, synthetic_features(), FPS, "synthetic")


def test_files_roll_over_at_the_size_limit(tmp_path):
    """Tiny size limits force a new data file and video file for every episode."""
    root = tmp_path / "ds"
    w = DatasetWriter.create(
        root, synthetic_features(), FPS, "synthetic",
        data_files_size_in_mb=1e-6, video_files_size_in_mb=1e-6,
    )  # fmt: skip
    episodes = [synthetic_episode(n, seed) for seed, n in enumerate([4, 6, 5])]
    for ep in episodes:
        w.add_episode(ep)
    eps = pd.read_parquet(root / "meta/episodes/chunk-000/file-000.parquet")
    assert eps["data/file_index"].tolist() == [0, 1, 2]
    assert eps[f"videos/{image_key('wrist')}/file_index"].tolist() == [0, 1, 2]
    assert eps[f"videos/{image_key('wrist')}/from_timestamp"].tolist() == [0.0, 0.0, 0.0]
    ds = LeRobotWindowDataset(root)
    item = ds[4 + 6 + 2]
    np.testing.assert_array_equal(item[ACTION].numpy(), episodes[2].action[2])
    assert int(item["index"]) == 12


@pytest.mark.parametrize("codec", ["h264", "libsvtav1"])
def test_packed_videos_round_trip_per_codec(tmp_path, codec):
    """Appending episodes remuxes packets; LeRobot's default AV1 must survive it too."""
    from embodied_mm.data.check import check_dataset
    from embodied_mm.data.lerobot_format import build_features
    from embodied_mm.data.synthetic import synthetic_episode as make

    root = tmp_path / codec
    features = build_features(
        state_dim=15, action_dim=7, cameras={"front": (64, 64)}, fps=20, codec=codec
    )
    w = DatasetWriter.create(root, features, 20, "synthetic")
    episodes = [make(n, s, hw=(64, 64), cameras=("front",)) for s, n in enumerate([9, 6, 8])]
    for ep in episodes:
        w.add_episode(ep)
    report = check_dataset(root)
    assert report.ok and report.videos_checked == 1, report.errors
    ds = LeRobotWindowDataset(root)
    i = 0
    for ep in episodes:
        for t in range(len(ep)):
            img = ds[i][image_key("front")].permute(1, 2, 0).numpy() * 255
            assert np.abs(img - ep.images[image_key("front")][t]).mean() < CODEC_MEAN_TOL
            i += 1


def test_a_second_writer_fails_at_once_naming_the_holder_and_readers_ignore_the_lock(tmp_path):
    root = tmp_path / "ds"
    with DatasetWriter.create(root, synthetic_features(), FPS, "synthetic") as w:
        w.add_episode(synthetic_episode(5, 0))
        for second in (
            lambda: DatasetWriter.open_for_resume(root),
            lambda: DatasetWriter.create(root, synthetic_features(), FPS, "synthetic"),
        ):
            with pytest.raises(DirectoryLockedError, match=f"pid {os.getpid()} on host"):
                second()
        assert (root / LOCK_NAME).is_file()
        report = check_dataset(root)  # readers take no lock, and skip the lock file
        assert report.ok and report.episodes == 1, report.errors
        w.add_episode(synthetic_episode(6, 1))  # the holder goes on undisturbed
    with DatasetWriter.open_for_resume(root) as resumed:  # released on close
        assert resumed.num_episodes == 2
    assert check_dataset(root).ok


def test_create_refuses_a_directory_with_files_but_no_info_json(tmp_path):
    root = tmp_path / "ds"
    write_synthetic(root, [5, 6])
    (root / fmt.INFO_PATH).unlink()  # lost metadata: the episodes are still there
    before = _snapshot(root)
    with pytest.raises(
        FileExistsError, match=re.escape(f"{root} holds files (data, meta, videos)")
    ):
        DatasetWriter.create(root, synthetic_features(), FPS, "synthetic")
    assert _snapshot(root) == before  # nothing overwritten or removed
    with pytest.raises(fmt.DatasetFormatError, match=r"meta/info\.json: missing"):
        DatasetWriter.open_for_resume(root)
    assert _snapshot(root) == before


def _snapshot(root: Path) -> dict[str, bytes]:
    """Every LeRobot file's bytes (the writer's lock file aside)."""
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != LOCK_NAME
    }


class _SyscallLog:
    """Wraps the real os.fsync / os.replace and records what they were applied to."""

    def __init__(self, monkeypatch) -> None:
        self.events: list[tuple[str, Path, Path | None]] = []
        real_fsync, real_replace = os.fsync, os.replace

        def fsync(fd):
            self.events.append(("fsync", Path(os.readlink(f"/proc/self/fd/{fd}")), None))
            return real_fsync(fd)

        def replace(src, dst, **kw):
            real_replace(src, dst, **kw)
            self.events.append(("replace", Path(src).resolve(), Path(dst).resolve()))

        monkeypatch.setattr(os, "fsync", fsync)
        monkeypatch.setattr(os, "replace", replace)

    def index(self, kind: str, path: Path, dst: Path | None = None) -> int:
        for i, (k, p, d) in enumerate(self.events):
            if k == kind and (p == path or (dst is not None and d == dst)):
                return i
        raise AssertionError(f"no {kind} of {path or dst} in {self.events}")


def test_commit_makes_videos_durable_before_renaming_them_and_info_json_last(tmp_path, monkeypatch):
    """The order a power loss cannot break: a staged video's contents are fsynced before the
    rename that puts it in the dataset, its directory after, and info.json comes last."""
    root = (tmp_path / "ds").resolve()
    w = DatasetWriter.create(
        root, synthetic_features(), FPS, "synthetic", video_files_size_in_mb=1e-6
    )  # every episode opens new video files: the rename path
    w.add_episode(synthetic_episode(4, 0))
    staged = stage_episode(synthetic_episode(5, 1), w.staging_dir, FPS)
    log = _SyscallLog(monkeypatch)
    w.commit(staged)
    monkeypatch.undo()
    w.close()

    info_commit = log.index("replace", None, dst=root / fmt.INFO_PATH)
    for key, src in staged.videos.items():
        dst = root / fmt.VIDEO_PATH.format(video_key=key, chunk_index=0, file_index=1)
        moved = log.index("replace", src.resolve(), dst=dst)
        assert log.index("fsync", src.resolve()) < moved  # contents first
        synced_dir = [
            i for i, (k, p, _) in enumerate(log.events) if k == "fsync" and p == dst.parent
        ]
        assert any(moved < i < info_commit for i in synced_dir)  # then the directory entry
    data = root / "data/chunk-000/file-000.parquet"  # appended to (data size limit)
    assert log.index("replace", None, dst=data) < info_commit
    assert info_commit == len(log.events) - 2  # the last rename, then its directory's fsync
    assert log.events[-1] == ("fsync", root / "meta", None)
    assert check_dataset(root).ok


def _inodes(directory: Path) -> dict[Path, int]:
    return {p: p.stat().st_ino for p in directory.glob("chunk-*/file-*.parquet")}


def test_a_commit_rewrites_a_bounded_number_of_episodes_rows_whatever_the_size(tmp_path):
    """The episodes table is chunked: a commit rewrites only the open file, at most
    ``episodes_per_file`` rows, however many episodes came before (not all of them)."""
    root = tmp_path / "ds"
    meta = root / "meta/episodes"
    rewritten = []  # rows in the files each commit replaced (an atomic write = a new inode)
    with DatasetWriter.create(
        root, synthetic_features(), FPS, "synthetic", episodes_per_file=4
    ) as w:
        before = _inodes(meta)
        for seed in range(11):
            w.add_episode(synthetic_episode(3, seed))
            after = _inodes(meta)
            changed = [p for p, ino in after.items() if before.get(p) != ino]
            rewritten.append(sum(pq.read_metadata(p).num_rows for p in changed))
            before = after
    assert rewritten == [1, 2, 3, 4, 1, 2, 3, 4, 1, 2, 3]
    assert [pq.read_metadata(p).num_rows for p in sorted(_inodes(meta))] == [4, 4, 3]
    eps = episodes_table(root)
    assert eps["meta/episodes/file_index"].tolist() == [0] * 4 + [1] * 4 + [2] * 3
    assert eps["episode_index"].tolist() == list(range(11))
    report = check_dataset(root)
    assert report.ok and report.episodes == 11, report.errors
    with DatasetWriter.open_for_resume(root, episodes_per_file=4) as w:  # goes on in file 2
        w.add_episode(synthetic_episode(3, 11))
        w.add_episode(synthetic_episode(3, 12))
    assert episodes_table(root)["meta/episodes/file_index"].tolist()[-2:] == [2, 3]
    assert len(LeRobotWindowDataset(root)) == 13 * 3


def test_resume_drops_an_episodes_file_a_cut_short_commit_started(tmp_path, monkeypatch):
    root = tmp_path / "ds"
    w = DatasetWriter.create(root, synthetic_features(), FPS, "synthetic", episodes_per_file=2)
    w.add_episode(synthetic_episode(3, 0))
    w.add_episode(synthetic_episode(3, 1))
    crash_at_the_commit_point(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        w.add_episode(synthetic_episode(4, 2))
    monkeypatch.undo()
    w.close()
    started = root / "meta/episodes/chunk-000/file-001.parquet"
    assert started.is_file()  # the interrupted commit's row, invisible to readers:
    assert check_dataset(root).ok and len(DatasetMeta(root).episodes) == 2
    with DatasetWriter.open_for_resume(root, episodes_per_file=2) as resumed:
        assert not started.exists()
        resumed.add_episode(synthetic_episode(5, 3))
    assert pq.read_table(started)["length"].to_pylist() == [5]
    report = check_dataset(root)
    assert report.ok and report.episodes == 3 and report.frames == 11, report.errors
