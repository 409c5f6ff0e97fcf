"""The recorder on a synthetic demo source: success filter, seed order, workers, resume."""

from __future__ import annotations

import json
import os
import re

import numpy as np
import pyarrow.parquet as pq
import pytest

from embodied_mm.data.check import check_dataset
from embodied_mm.data.reader import DatasetMeta, load_frames
from embodied_mm.data.recorder import record
from embodied_mm.data.video import count_frames
from embodied_mm.data.writer import DatasetWriter
from embodied_mm.dirlock import LOCK_NAME, DirectoryLockedError, exclusive_lock
from embodied_mm.features import ACTION, OBS_STATE
from tests.data.conftest import (
    FPS,
    crash_at_the_commit_point,
    episodes_table,
    synthetic_episode,
    synthetic_features,
)
from tests.data.synthetic_source import SyntheticSource, synthetic_factory


def _episodes_table(root):
    return episodes_table(root)


def test_keeps_successes_in_seed_order(tmp_path):
    summary = record(synthetic_factory(), tmp_path / "ds", 6, progress=False)
    assert (summary.episodes, summary.attempts, summary.failures) == (6, 7, 1)
    eps = _episodes_table(tmp_path / "ds")
    assert eps["seed"].tolist() == [0, 1, 2, 4, 5, 6]  # seed 3 failed
    assert eps["success"].all()
    assert check_dataset(tmp_path / "ds").ok


def test_keep_failures(tmp_path):
    record(synthetic_factory(), tmp_path / "ds", 5, keep_failures=True, progress=False)
    eps = _episodes_table(tmp_path / "ds")
    assert eps["seed"].tolist() == [0, 1, 2, 3, 4]
    assert eps["success"].tolist() == [True, True, True, False, True]


@pytest.mark.slow
def test_two_workers_write_the_same_dataset_as_one(tmp_path):
    record(synthetic_factory(), tmp_path / "one", 5, workers=1, progress=False)
    record(synthetic_factory(), tmp_path / "two", 5, workers=2, progress=False)
    a, b = (load_frames(DatasetMeta(tmp_path / n)).columns for n in ("one", "two"))
    for key in (OBS_STATE, ACTION, "index", "episode_index", "task_index"):
        np.testing.assert_array_equal(a[key], b[key])
    assert a["plan"] == b["plan"]
    assert check_dataset(tmp_path / "two").ok
    assert not (tmp_path / "two/.staging").exists()


def test_resume_continues_after_the_last_committed_seed(tmp_path):
    root = tmp_path / "ds"
    record(synthetic_factory(), root, 2, progress=False)
    with pytest.raises(FileExistsError, match="--resume"):
        record(synthetic_factory(), root, 4, progress=False)
    summary = record(synthetic_factory(), root, 4, resume=True, progress=False)
    assert (summary.recorded, summary.episodes) == (2, 4)
    assert _episodes_table(root)["seed"].tolist() == [0, 1, 2, 4]
    assert check_dataset(root).ok


def test_broken_expert_stops_with_a_clear_error(tmp_path):
    class AlwaysFails(SyntheticSource):
        def episode(self, seed):
            ep = super().episode(seed)
            ep.success = False
            return ep

    with pytest.raises(RuntimeError, match="in a row failed"):
        record(AlwaysFails, tmp_path / "ds", 2, progress=False)


def test_commit_cut_short_before_info_json_is_invisible_and_resumable(tmp_path, monkeypatch):
    """A crash after the episode's files are renamed but before info.json is rewritten."""
    root = tmp_path / "ds"
    w = DatasetWriter.create(root, synthetic_features(), FPS, "synthetic")
    w.add_episode(synthetic_episode(5, 0))
    crash_at_the_commit_point(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        w.add_episode(synthetic_episode(6, 1))
    monkeypatch.undo()
    w.close()  # the crashed process is gone: its lock with it

    data = root / "data/chunk-000/file-000.parquet"
    video = root / "videos/observation.images.front/chunk-000/file-000.mp4"
    assert len(pq.read_table(data)) == 11 and count_frames(video) == 11  # appended ...
    meta = DatasetMeta(root)
    assert len(meta.episodes) == 1 and len(load_frames(meta)) == 5  # ... but nobody sees it
    assert check_dataset(root).ok
    resumed = DatasetWriter.open_for_resume(root)
    assert len(pq.read_table(data)) == 5 and count_frames(video) == 5  # cut back
    resumed.add_episode(synthetic_episode(7, 2))
    info = json.loads((root / "meta/info.json").read_text())
    assert (info["total_episodes"], info["total_frames"]) == (2, 12)
    assert check_dataset(root).ok


def _files(root) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != LOCK_NAME
    }


@pytest.mark.parametrize("resume", [True, False])
def test_files_without_info_json_are_an_error_never_a_fresh_start(tmp_path, resume):
    root = tmp_path / "ds"
    record(synthetic_factory(), root, 3, progress=False)
    (root / "meta/info.json").unlink()
    before = _files(root)
    with pytest.raises(FileExistsError, match=re.escape(f"{root} holds files")) as err:
        record(synthetic_factory(), root, 5, resume=resume, progress=False)
    assert "meta/info.json" in str(err.value)
    assert _files(root) == before  # the three episodes are untouched


def test_resume_of_a_dataset_that_is_already_large_enough_records_nothing(tmp_path):
    root = tmp_path / "ds"
    record(synthetic_factory(), root, 3, progress=False)
    before = _files(root)
    for target in (3, 2):
        summary = record(synthetic_factory(), root, target, resume=True, progress=False)
        assert (summary.recorded, summary.episodes, summary.attempts) == (0, 3, 0)
    assert _files(root) == before
    assert len(DatasetMeta(root).episodes) == 3


def test_the_recorder_holds_the_lock_from_before_it_looks_at_the_directory(tmp_path):
    root = tmp_path / "ds"
    record(synthetic_factory(), root, 2, progress=False)
    in_flight = root / ".staging" / "x-front.mp4"  # what the holder is about to commit
    in_flight.parent.mkdir()
    in_flight.write_bytes(b"staged")
    before = _files(root)
    with (
        exclusive_lock(root, "dataset"),  # as another recorder would hold it
        pytest.raises(DirectoryLockedError, match=f"pid {os.getpid()}"),
    ):
        record(synthetic_factory(), root, 4, resume=True, progress=False)
    assert _files(root) == before  # the holder's staging area is left alone
    assert record(synthetic_factory(), root, 4, resume=True, progress=False).recorded == 2
