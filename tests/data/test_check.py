"""``check_dataset``: every kind of damage is reported, naming the damaged file."""

from __future__ import annotations

import json

import pytest

from embodied_mm.data.check import check_dataset
from embodied_mm.data.lerobot_format import DatasetFormatError
from embodied_mm.data.reader import DatasetMeta, load_frames
from embodied_mm.data.synthetic import synthetic_frames
from embodied_mm.data.torch_dataset import LeRobotWindowDataset
from embodied_mm.data.video import VideoDecodeError, encode_video
from tests.data.conftest import HW

FRONT = "videos/observation.images.front/chunk-000"


def test_clean_dataset_passes(small_dataset):
    root, _ = small_dataset
    report = check_dataset(root)
    assert report.ok, report.errors
    assert (report.episodes, report.frames, report.videos_checked) == (3, 34, 2)


def test_flipped_bytes_in_parquet_name_the_file(small_dataset):
    root, _ = small_dataset
    path = root / "data/chunk-000/file-000.parquet"
    raw = bytearray(path.read_bytes())
    raw[80:120] = b"\xff" * 40  # inside the first data page; page checksums catch it
    path.write_bytes(bytes(raw))
    report = check_dataset(root)
    assert not report.ok
    assert str(path) in report.errors[0] and "parquet" in report.errors[0]
    with pytest.raises(DatasetFormatError, match=r"file-000\.parquet"):
        load_frames(DatasetMeta(root))


def test_truncated_parquet_names_the_file(small_dataset):
    root, _ = small_dataset
    path = root / "data/chunk-000/file-000.parquet"
    path.write_bytes(path.read_bytes()[:-40])
    report = check_dataset(root)
    assert any(str(path) in e for e in report.errors)


def test_corrupt_mp4_names_the_file(small_dataset):
    root, _ = small_dataset
    path = root / FRONT / "file-000.mp4"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    report = check_dataset(root)
    assert len(report.errors) == 1 and str(path) in report.errors[0]
    ds = LeRobotWindowDataset(root)
    with pytest.raises(VideoDecodeError, match=r"file-000\.mp4"):
        ds[13]


def test_video_with_missing_frames_is_reported(small_dataset):
    root, _ = small_dataset
    path = root / FRONT / "file-000.mp4"
    encode_video(synthetic_frames(30, 0, HW), path, fps=10)  # the 3 episodes have 34 rows
    report = check_dataset(root)
    assert report.errors == [
        f"{path}: episode 2 (observation.images.front) has 15 rows but 11 video frames"
    ]


def test_missing_video_and_stats_are_reported(small_dataset):
    root, _ = small_dataset
    (root / "videos/observation.images.wrist/chunk-000/file-000.mp4").unlink()
    stats = json.loads((root / "meta/stats.json").read_text())
    del stats["action"]
    (root / "meta/stats.json").write_text(json.dumps(stats))
    errors = check_dataset(root).errors
    assert any("file-000.mp4: missing video file" in e for e in errors)
    assert any("stats.json: no stats for 'action'" in e for e in errors)


def test_bad_timestamps_are_reported(small_dataset, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    root, _ = small_dataset
    path = root / "data/chunk-000/file-000.parquet"
    table = pq.read_table(path)
    ts = table["timestamp"].to_numpy().copy()
    ts[12 + 3] += 0.03  # episode 1 starts at row 12  # a dropped/late frame: not on the 1/fps grid
    table = table.set_column(table.column_names.index("timestamp"), "timestamp", pa.array(ts))
    pq.write_table(table, path)
    errors = check_dataset(root).errors
    assert errors == [
        f"{path}: episode 1: timestamp of frame 3 is 0.330000s, expected 0.300000s (1/fps steps)"
    ]


def test_missing_or_unknown_version_info(tmp_path, small_dataset):
    assert "missing" in check_dataset(tmp_path / "nothing").errors[0]
    root, _ = small_dataset
    info = json.loads((root / "meta/info.json").read_text())
    info["codebase_version"] = "v1.6"
    (root / "meta/info.json").write_text(json.dumps(info))
    assert "v1.6" in check_dataset(root).errors[0] and "info.json" in check_dataset(root).errors[0]
