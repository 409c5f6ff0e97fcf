"""``embodied-mm dataset check``: verify a LeRobot dataset on disk.

Checks the schema (info.json, features), that every episode's rows exist and agree with the
metadata, that timestamps advance by exactly 1/fps from 0 in each episode, that every video
holds one frame per row at the expected timestamps, and that the normalisation stats cover
the state, action and camera features. Every problem names the file it was found in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np

from embodied_mm.data import lerobot_format as fmt
from embodied_mm.data.reader import DatasetMeta, FrameTable, load_frames
from embodied_mm.data.video import DEFAULT_TOLERANCE_S
from embodied_mm.features import ACTION, INTERVENTION, OBS_STATE

REQUIRED_V30_INFO = (
    "robot_type",
    "total_episodes",
    "total_frames",
    "total_tasks",
    "chunks_size",
    "fps",
    "data_path",
    "features",
)
REQUIRED_STATS = ("mean", "std", "min", "max")


@dataclass
class CheckReport:
    root: Path
    episodes: int = 0
    frames: int = 0
    videos_checked: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


def check_dataset(root: Path, tolerance_s: float = DEFAULT_TOLERANCE_S) -> CheckReport:
    """Run every check; problems are collected in ``report.errors`` (empty when valid)."""
    root = Path(root)
    report = CheckReport(root)
    try:
        meta = DatasetMeta(root)
        _check_schema(meta, report)
        frames = load_frames(meta)
    except fmt.DatasetFormatError as e:
        report.errors.append(str(e))
        return report
    except (KeyError, ValueError, TypeError) as e:
        report.errors.append(f"{root / fmt.INFO_PATH}: inconsistent metadata ({e!r})")
        return report
    report.episodes, report.frames = len(meta.episodes), len(frames)
    _check_timestamps(meta, frames, report, tolerance_s)
    _check_tasks(meta, frames, report)
    _check_interventions(meta, frames, report)
    _check_videos(meta, report, tolerance_s)
    _check_stats(meta, report)
    return report


def _check_schema(meta: DatasetMeta, report: CheckReport) -> None:
    info_path = meta.root / fmt.INFO_PATH
    if meta.version == "v3.0":
        missing = [k for k in REQUIRED_V30_INFO if k not in meta.info]
        if missing:
            report.errors.append(f"{info_path}: lacks {missing}")
        if meta.video_keys and not meta.info.get("video_path"):
            report.errors.append(f"{info_path}: has video features but no video_path")
    for key, feat in meta.features.items():
        if not isinstance(feat, dict) or "dtype" not in feat or "shape" not in feat:
            report.errors.append(f"{info_path}: feature {key!r} lacks dtype/shape")
        elif feat["dtype"] == "video" and "info" not in feat and meta.version == "v3.0":
            report.errors.append(f"{info_path}: video feature {key!r} lacks its video info")
    for key in (OBS_STATE, ACTION, *fmt.BOOKKEEPING):
        if key not in meta.features:
            report.errors.append(f"{info_path}: no {key!r} feature")
    declared = int(meta.info.get("total_frames", meta.total_frames))
    if declared != meta.total_frames:
        report.errors.append(
            f"{info_path}: total_frames={declared}, the episodes sum to {meta.total_frames}"
        )
    if meta.version == "v3.0" and int(meta.info.get("total_episodes", -1)) != len(meta.episodes):
        report.errors.append(f"{info_path}: total_episodes disagrees with the episodes table")


def _check_timestamps(
    meta: DatasetMeta, frames: FrameTable, report: CheckReport, tol: float
) -> None:
    ts, fi = frames.columns["timestamp"], frames.columns["frame_index"]
    offset = 0
    for ep in meta.episodes:
        rows = slice(offset, offset + ep.length)
        offset += ep.length
        expected = np.arange(ep.length)
        if not np.array_equal(fi[rows], expected):
            report.errors.append(
                f"{ep.data_file}: episode {ep.episode_index}: frame_index is not 0..{ep.length - 1}"
            )
            continue
        err = np.abs(ts[rows].astype(np.float64) - expected / meta.fps)
        if err.max(initial=0.0) > tol:
            k = int(err.argmax())
            report.errors.append(
                f"{ep.data_file}: episode {ep.episode_index}: timestamp of frame {k} is "
                f"{float(ts[rows][k]):.6f}s, expected {k / meta.fps:.6f}s (1/fps steps)"
            )


def _check_interventions(meta: DatasetMeta, frames: FrameTable, report: CheckReport) -> None:
    """``intervention`` (deploy --record) is a flag: 0 (the policy drove) or 1 (a person)."""
    if INTERVENTION not in frames.columns:
        return
    values = np.asarray(frames.columns[INTERVENTION])
    offset = 0
    for ep in meta.episodes:
        rows = values[offset : offset + ep.length]
        offset += ep.length
        bad = sorted(set(np.unique(rows).tolist()) - {0, 1})
        if bad:
            report.errors.append(
                f"{ep.data_file}: episode {ep.episode_index}: {INTERVENTION!r} holds {bad[:5]}; "
                "it is 0 (the policy drove) or 1 (a person did)"
            )


def _check_tasks(meta: DatasetMeta, frames: FrameTable, report: CheckReport) -> None:
    used = set(np.unique(frames.columns["task_index"]).tolist())
    unknown = sorted(used - set(meta.tasks))
    if unknown:
        report.errors.append(f"{meta.root / fmt.TASKS_PATH}: no task text for task_index {unknown}")


def _check_videos(meta: DatasetMeta, report: CheckReport, tol: float) -> None:
    times: dict[Path, np.ndarray | None] = {}
    for ep in meta.episodes:
        for key, (path, from_ts) in ep.videos.items():
            if path not in times:
                times[path] = _frame_times(path, report)
                report.videos_checked += 1
            t = times[path]
            if t is None:
                continue
            expected = from_ts + np.arange(ep.length) / meta.fps
            inside = t[(t >= from_ts - tol) & (t < from_ts + ep.length / meta.fps - tol)]
            if len(inside) != ep.length:
                report.errors.append(
                    f"{path}: episode {ep.episode_index} ({key}) has {ep.length} rows but "
                    f"{len(inside)} video frames"
                )
            elif np.abs(inside - expected).max() > tol:
                report.errors.append(
                    f"{path}: episode {ep.episode_index} ({key}): frame times are not "
                    f"{from_ts:.4f}s + k/fps"
                )


def _frame_times(path: Path, report: CheckReport) -> np.ndarray | None:
    """Presentation times of every frame, by decoding the whole file (headers can lie)."""
    if not path.is_file():
        report.errors.append(f"{path}: missing video file")
        return None
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            return np.array([float(f.time) for f in container.decode(stream)])
    except (av.FFmpegError, IndexError) as e:
        report.errors.append(f"{path}: corrupt or unreadable video ({e})")
        return None


def _check_stats(meta: DatasetMeta, report: CheckReport) -> None:
    try:
        stats = meta.stats
    except fmt.DatasetFormatError as e:
        report.errors.append(str(e))
        return
    path = meta.root / fmt.STATS_PATH
    if not path.is_file():  # v2.1 keeps per-episode stats only
        path = meta.root / fmt.V21_EPISODES_STATS_PATH
    for key in (OBS_STATE, ACTION, *meta.video_keys):
        if key not in stats:
            report.errors.append(f"{path}: no stats for {key!r}")
            continue
        missing = [s for s in REQUIRED_STATS if s not in stats[key]]
        if missing:
            report.errors.append(f"{path}: stats for {key!r} lack {missing}")
            continue
        want = (3, 1, 1) if key in meta.video_keys else tuple(meta.features[key]["shape"])
        got = np.shape(stats[key]["mean"])
        if got != want:
            report.errors.append(f"{path}: stats mean of {key!r} has shape {got}, expected {want}")
        if not all(np.isfinite(stats[key][s]).all() for s in REQUIRED_STATS):
            report.errors.append(f"{path}: stats of {key!r} are not finite")
