"""Opening LeRobot datasets (v3.0 and v2.1) from a local directory.

Both versions are read into one view: :class:`DatasetMeta` (info, tasks, stats, and one
:class:`EpisodeRef` per episode saying where its rows and video frames are) and
:class:`FrameTable` (every frame's non-video features as numpy arrays in global ``index``
order). Video frames are decoded on demand by ``torch_dataset.py``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from embodied_mm.data import lerobot_format as fmt
from embodied_mm.data.stats import Stats, aggregate_stats, stats_from_json


@dataclass(frozen=True)
class EpisodeRef:
    """Where one episode lives. Rows ``[from_index, to_index)`` in global ``index`` order."""

    episode_index: int
    length: int
    tasks: tuple[str, ...]
    from_index: int
    to_index: int
    data_file: Path
    videos: dict[str, tuple[Path, float]]  # video key -> (mp4, timestamp of frame 0 there)


class DatasetMeta:
    """The metadata of a local LeRobot dataset, v3.0 or v2.1."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.info = fmt.load_info(self.root)
        self.version: str = self.info["codebase_version"]
        self.fps: int = int(self.info["fps"])
        self.features: dict[str, dict[str, Any]] = self.info["features"]
        self.video_keys = fmt.video_keys(self.features)
        if self.version == "v3.0":
            self.tasks, self.episodes = self._load_v30()
        else:
            self.tasks, self.episodes = self._load_v21()
        self._stats: dict[str, Stats] | None = None

    @property
    def total_frames(self) -> int:
        return sum(e.length for e in self.episodes)

    @property
    def stats(self) -> dict[str, Stats]:
        """``meta/stats.json``, or (v2.1 without it) the aggregate of episodes_stats.jsonl."""
        if self._stats is None:
            path = self.root / fmt.STATS_PATH
            if path.is_file():
                self._stats = stats_from_json(_read_json(path))
            elif (self.root / fmt.V21_EPISODES_STATS_PATH).is_file():
                lines = _read_jsonl(self.root / fmt.V21_EPISODES_STATS_PATH)
                self._stats = aggregate_stats([stats_from_json(x["stats"]) for x in lines])
            else:
                raise fmt.DatasetFormatError(f"{path}: missing (no normalisation statistics)")
        return self._stats

    # --- v3.0 ----------------------------------------------------------------------------
    def _load_v30(self) -> tuple[dict[int, str], list[EpisodeRef]]:
        n = int(self.info.get("total_episodes", 0))
        if n == 0:
            return {}, []
        tasks_path = self.root / fmt.TASKS_PATH
        tasks_df = _read_parquet(tasks_path).to_pandas()
        if "task" in tasks_df.columns:  # written without the index
            tasks_df = tasks_df.set_index("task")
        tasks = {
            int(i): str(t) for t, i in zip(tasks_df.index, tasks_df["task_index"], strict=True)
        }
        files = sorted(self.root.glob("meta/episodes/chunk-*/file-*.parquet"))
        if not files:
            raise fmt.DatasetFormatError(f"{self.root / 'meta/episodes'}: no episode tables")
        table = pd.concat([_read_parquet(p).to_pandas() for p in files], ignore_index=True)
        # Rows past total_episodes belong to an episode whose commit did not finish.
        table = table[table["episode_index"] < n].sort_values("episode_index")
        if len(table) != n:
            raise fmt.DatasetFormatError(
                f"{self.root / fmt.INFO_PATH}: total_episodes={n}, episode tables hold "
                f"{len(table)} of them"
            )
        episodes = []
        for row in table.to_dict("records"):
            data_file = self.root / self.info["data_path"].format(
                chunk_index=int(row["data/chunk_index"]), file_index=int(row["data/file_index"])
            )
            videos = {
                key: (
                    self.root
                    / self.info["video_path"].format(
                        video_key=key,
                        chunk_index=int(row[f"videos/{key}/chunk_index"]),
                        file_index=int(row[f"videos/{key}/file_index"]),
                    ),
                    float(row[f"videos/{key}/from_timestamp"]),
                )
                for key in self.video_keys
            }
            episodes.append(
                EpisodeRef(
                    episode_index=int(row["episode_index"]),
                    length=int(row["length"]),
                    tasks=tuple(str(t) for t in row["tasks"]),
                    from_index=int(row["dataset_from_index"]),
                    to_index=int(row["dataset_to_index"]),
                    data_file=data_file,
                    videos=videos,
                )
            )
        return tasks, episodes

    # --- v2.1 ----------------------------------------------------------------------------
    def _load_v21(self) -> tuple[dict[int, str], list[EpisodeRef]]:
        tasks = {
            int(x["task_index"]): str(x["task"])
            for x in _read_jsonl(self.root / fmt.V21_TASKS_PATH)
        }
        rows = sorted(
            _read_jsonl(self.root / fmt.V21_EPISODES_PATH), key=lambda x: x["episode_index"]
        )
        cs = int(self.info.get("chunks_size", fmt.DEFAULT_CHUNKS_SIZE))
        episodes, start = [], 0
        for row in rows:
            ep, length = int(row["episode_index"]), int(row["length"])
            chunk = ep // cs
            data_file = self.root / self.info["data_path"].format(
                episode_chunk=chunk, episode_index=ep
            )
            videos = {
                key: (
                    self.root
                    / self.info["video_path"].format(
                        episode_chunk=chunk, video_key=key, episode_index=ep
                    ),
                    0.0,  # v2.1: one episode per video file
                )
                for key in self.video_keys
            }
            episodes.append(
                EpisodeRef(
                    ep, length, tuple(row["tasks"]), start, start + length, data_file, videos
                )
            )
            start += length
        return tasks, episodes


@dataclass
class FrameTable:
    """Every frame's non-video features, rows in global ``index`` order.

    Numeric features are arrays (N, *shape) (``timestamp`` etc. are (N,)); string features
    (``plan``) are lists of N strings.
    """

    columns: dict[str, Any]

    def __len__(self) -> int:
        return len(self.columns["index"])


def load_frames(meta: DatasetMeta) -> FrameTable:
    """Read the data files of every episode in ``meta`` and check they agree with it."""
    wanted = [k for k, f in meta.features.items() if f.get("dtype") not in ("video", "image")]
    keep = {e.episode_index for e in meta.episodes}
    parts: list[pa.Table] = []
    for path in dict.fromkeys(e.data_file for e in meta.episodes):  # unique, in order
        table = _read_parquet(path)
        missing = [k for k in wanted if k not in table.column_names]
        if missing:
            raise fmt.DatasetFormatError(f"{path}: lacks columns {missing}")
        table = table.select(wanted)
        mask = pc.is_in(table["episode_index"], value_set=pa.array(sorted(keep)))
        parts.append(table.filter(mask))
    if not parts:
        return FrameTable({k: np.zeros((0,)) for k in wanted})
    table = pa.concat_tables(parts, promote_options="permissive")
    order = np.argsort(table["index"].to_numpy(), kind="stable")
    columns: dict[str, Any] = {}
    for key in wanted:
        col = table[key].combine_chunks()
        if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
            values = col.to_pylist()
            columns[key] = [values[i] for i in order]
        else:
            columns[key] = _numeric(col, key, meta)[order]
    frames = FrameTable(columns)
    _check_rows(meta, frames)
    return frames


def _numeric(col: pa.Array, key: str, meta: DatasetMeta) -> np.ndarray:
    shape = tuple(meta.features[key]["shape"])
    dtype = np.dtype(meta.features[key]["dtype"])
    if pa.types.is_list(col.type) or pa.types.is_fixed_size_list(col.type):
        flat = col.flatten().to_numpy(zero_copy_only=False)
        return flat.astype(dtype, copy=False).reshape((len(col), *shape))
    values = col.to_numpy(zero_copy_only=False).astype(dtype, copy=False)
    return values if shape == (1,) else values.reshape((len(col), *shape))


def _check_rows(meta: DatasetMeta, frames: FrameTable) -> None:
    index, ep_col = frames.columns["index"], frames.columns["episode_index"]
    offset = 0
    for e in meta.episodes:
        rows = slice(offset, offset + e.length)
        ok = (
            len(index[rows]) == e.length
            and np.array_equal(index[rows], np.arange(e.from_index, e.to_index))
            and np.all(ep_col[rows] == e.episode_index)
        )
        if not ok:
            raise fmt.DatasetFormatError(
                f"{e.data_file}: rows of episode {e.episode_index} do not match the metadata "
                f"(expected {e.length} rows with index {e.from_index}..{e.to_index - 1})"
            )
        offset += e.length


def _read_parquet(path: Path) -> pa.Table:
    if not path.is_file():
        raise fmt.DatasetFormatError(f"{path}: missing")
    try:
        return pq.read_table(path, page_checksum_verification=True)
    except (pa.ArrowException, OSError) as e:
        raise fmt.DatasetFormatError(f"{path}: unreadable parquet ({e})") from e


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise fmt.DatasetFormatError(f"{path}: unreadable JSON ({e})") from e


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise fmt.DatasetFormatError(f"{path}: missing")
    out = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise fmt.DatasetFormatError(f"{path}:{n}: bad JSON line ({e})") from e
    return out
