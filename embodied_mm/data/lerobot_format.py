"""The LeRobotDataset on-disk layout: path templates, feature schema, ``meta/info.json``.

We write v3.0 and read v3.0 and v2.1. The layouts, relative to the dataset root:

v3.0 (written here)::

    meta/info.json                                   codebase_version "v3.0", fps, features, ...
    meta/stats.json                                  {feature: {"mean": [...], "std": ..., ...}}
    meta/tasks.parquet                               index: task text, column task_index
    meta/episodes/chunk-XXX/file-XXX.parquet         one row per episode (lengths, files, stats)
    data/chunk-XXX/file-XXX.parquet                  one row per frame
    videos/<video_key>/chunk-XXX/file-XXX.mp4        one stream per camera

v2.1 (read only)::

    meta/info.json, meta/episodes.jsonl, meta/tasks.jsonl, meta/episodes_stats.jsonl
    data/chunk-000/episode_000000.parquet
    videos/chunk-000/<video_key>/episode_000000.mp4

Several episodes share a data file and a video file (until the file reaches
``data_files_size_in_mb`` / ``video_files_size_in_mb``); the episodes table says where each
one's rows are (``dataset_from_index``/``dataset_to_index``) and where its frames are in each
video (``videos/<key>/from_timestamp``/``to_timestamp``). See ``writer.py``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from embodied_mm.errors import UsageError
from embodied_mm.features import ACTION, INTERVENTION, OBS_STATE, PLAN, image_key

# re-exported: the writer (and its crash tests) call these as fmt.<name>
from embodied_mm.fsio import atomic_write_bytes, atomic_write_json, fsync_dir  # noqa: F401

CODEBASE_VERSION = "v3.0"
READABLE_VERSIONS = ("v3.0", "v2.1")

INFO_PATH = "meta/info.json"
STATS_PATH = "meta/stats.json"
TASKS_PATH = "meta/tasks.parquet"
EPISODES_PATH = "meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"

# v2.1 (read only)
V21_EPISODES_PATH = "meta/episodes.jsonl"
V21_TASKS_PATH = "meta/tasks.jsonl"
V21_EPISODES_STATS_PATH = "meta/episodes_stats.jsonl"

DEFAULT_CHUNKS_SIZE = 1000
# LeRobot's defaults are 100 MB (data) and 500 MB (video). Ours are smaller because every
# commit rewrites the open file (that is what makes it atomic): at 10 MB a commit stays
# around 0.2 s, while a 500 MB video of 128² episodes would take seconds per episode.
DEFAULT_DATA_FILES_SIZE_MB = 10
DEFAULT_VIDEO_FILES_SIZE_MB = 10

# LeRobot's per-frame bookkeeping columns, in its order.
BOOKKEEPING: dict[str, dict[str, Any]] = {
    "timestamp": {"dtype": "float32", "shape": [1], "names": None},
    "frame_index": {"dtype": "int64", "shape": [1], "names": None},
    "episode_index": {"dtype": "int64", "shape": [1], "names": None},
    "index": {"dtype": "int64", "shape": [1], "names": None},
    "task_index": {"dtype": "int64", "shape": [1], "names": None},
}

# Per-frame features some recordings add (Episode.extras), by key.
EXTRA_FEATURES: dict[str, dict[str, Any]] = {
    # 1: a person drove this frame (deploy --teleop) or the scripted expert labelled the state
    # the policy reached (record --policy, DAgger); 0: the policy's own command
    INTERVENTION: {"dtype": "uint8", "shape": [1], "names": None},
}

# Our episodes table also has "seed" and "success" columns (LeRobot ignores unknown columns).


class DatasetFormatError(UsageError):
    """A dataset on disk does not follow the layout; the message names the file."""


def video_feature(height: int, width: int, fps: int, codec: str, pix_fmt: str) -> dict[str, Any]:
    """The info.json entry of a camera stored as video (LeRobot's ``video`` dtype)."""
    return {
        "dtype": "video",
        "shape": [height, width, 3],
        "names": ["height", "width", "channels"],
        "info": {
            "video.height": height,
            "video.width": width,
            "video.codec": codec,
            "video.pix_fmt": pix_fmt,
            "video.is_depth_map": False,
            "video.fps": fps,
            "video.channels": 3,
            "has_audio": False,
        },
    }


def build_features(
    *,
    state_dim: int,
    action_dim: int,
    cameras: dict[str, tuple[int, int]],
    fps: int,
    codec: str,
    pix_fmt: str = "yuv420p",
    state_names: list[str] | None = None,
    action_names: list[str] | None = None,
    with_plan: bool = True,
    extras: dict[str, dict[str, Any]] | None = None,
) -> dict[str, dict[str, Any]]:
    """The ``features`` block of info.json for our recordings.

    ``cameras`` maps a camera name ("front") to its (H, W); ``task`` is not a feature in
    LeRobot: it is stored as ``task_index`` into ``meta/tasks.parquet``. ``extras``: more
    per-frame features by key (``{"intervention": INTERVENTION_FEATURE}``).
    """
    for name, dim, names in (
        (OBS_STATE, state_dim, state_names),
        (ACTION, action_dim, action_names),
    ):
        if names is not None and len(names) != dim:
            raise ValueError(f"{name}: {len(names)} names for dimension {dim}")
    features: dict[str, dict[str, Any]] = {
        OBS_STATE: {"dtype": "float32", "shape": [state_dim], "names": state_names},
        ACTION: {"dtype": "float32", "shape": [action_dim], "names": action_names},
    }
    for cam, (h, w) in cameras.items():
        features[image_key(cam)] = video_feature(h, w, fps, codec, pix_fmt)
    if with_plan:
        features[PLAN] = {"dtype": "string", "shape": [1], "names": None}
    features.update({k: dict(v) for k, v in (extras or {}).items()})
    features.update({k: dict(v) for k, v in BOOKKEEPING.items()})
    return features


def build_info(
    *,
    features: dict[str, dict[str, Any]],
    fps: int,
    robot_type: str,
    total_episodes: int = 0,
    total_frames: int = 0,
    total_tasks: int = 0,
    chunks_size: int = DEFAULT_CHUNKS_SIZE,
) -> dict[str, Any]:
    """A v3.0 ``meta/info.json`` document."""
    return {
        "codebase_version": CODEBASE_VERSION,
        "robot_type": robot_type,
        "total_episodes": total_episodes,
        "total_frames": total_frames,
        "total_tasks": total_tasks,
        "chunks_size": chunks_size,
        "data_files_size_in_mb": DEFAULT_DATA_FILES_SIZE_MB,
        "video_files_size_in_mb": DEFAULT_VIDEO_FILES_SIZE_MB,
        "fps": fps,
        "splits": {"train": f"0:{total_episodes}"},
        "data_path": DATA_PATH,
        "video_path": VIDEO_PATH if any_video(features) else None,
        "features": features,
    }


def any_video(features: dict[str, dict[str, Any]]) -> bool:
    return any(f.get("dtype") == "video" for f in features.values())


def video_keys(features: dict[str, dict[str, Any]]) -> list[str]:
    return [k for k, f in features.items() if f.get("dtype") == "video"]


def load_info(root: Path) -> dict[str, Any]:
    """Read and sanity-check ``meta/info.json``; errors name the file and the problem."""
    path = Path(root) / INFO_PATH
    if not path.is_file():
        raise DatasetFormatError(f"{path}: missing (not a LeRobot dataset directory?)")
    try:
        info = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DatasetFormatError(f"{path}: not valid JSON ({e})") from e
    if not isinstance(info, dict):
        raise DatasetFormatError(f"{path}: expected a JSON object")
    missing = [k for k in ("codebase_version", "fps", "features") if k not in info]
    if missing:
        raise DatasetFormatError(f"{path}: lacks {missing}")
    version = info["codebase_version"]
    if version not in READABLE_VERSIONS:
        raise DatasetFormatError(
            f"{path}: codebase_version {version!r} is not supported; "
            f"readable: {', '.join(READABLE_VERSIONS)}"
        )
    return info
