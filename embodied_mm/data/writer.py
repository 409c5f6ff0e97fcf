"""Writing LeRobotDataset v3.0, one committed episode at a time, safe against SIGKILL.

Episodes are packed into shared files as in LeRobot v3.0: an episode is appended to the
current ``data/chunk-XXX/file-XXX.parquet`` and ``videos/<key>/chunk-XXX/file-XXX.mp4`` until
a file would exceed ``data_files_size_in_mb`` / ``video_files_size_in_mb``, then the next file
index starts (and the next chunk after ``chunks_size`` files).

The episodes table is chunked the same way: ``meta/episodes/chunk-XXX/file-XXX.parquet`` holds
``episodes_per_file`` rows (100 by default) and then the next file starts, so a commit
rewrites at most that many rows however many episodes the dataset holds.

The commit protocol (why a reader never sees a partly written episode, and why a power loss
cannot leave a committed episode pointing at data that never reached the disk):

1. ``stage``: the episode's videos are encoded under ``<root>/.staging/`` (this can run in a
   recording worker process), and its image stats computed.
2. ``commit`` writes, in this order, each step on disk before the next begins:

   a. the data file: the new version (old rows + this episode's) goes to a temporary file,
      which is fsynced, renamed over the old one, and its directory fsynced;
   b. each camera's video: a new file is the staged mp4 itself, whose **contents are
      fsynced before it is renamed** into place (then its directory is fsynced); an append
      is remuxed into a temporary file, fsynced, renamed, directory fsynced;
   c. the metadata, each file atomically (temp + fsync + rename + directory fsync):
      ``tasks.parquet`` (only when the task is new), the open episodes-table file, stats,
      and **last** ``meta/info.json``, whose ``total_episodes`` is the commit point.

   Every file is thus either its old or its new version, and everything an episode refers
   to is durable before ``info.json`` counts it. Rows and frames past the committed
   episodes are invisible: readers take only episodes below ``total_episodes``, and only
   their rows and the frames in their timestamp spans.

A writer holds the dataset's exclusive lock (``<root>/.lock``, :mod:`embodied_mm.dirlock`)
from ``create``/``open_for_resume`` until :meth:`DatasetWriter.close`: a second writer fails
at once with an error naming the holder's pid and host. Readers take no lock and ignore the
file (LeRobot reads only the paths info.json and the episodes table name).

``open_for_resume`` removes the staging area, files no committed episode uses, and rows or
frames of an uncommitted episode left at the end of a file, then rewrites the metadata.
"""

from __future__ import annotations

import functools
import io
import os
import shutil
import uuid
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from embodied_mm import fsio
from embodied_mm.data import lerobot_format as fmt
from embodied_mm.data.episode import Episode
from embodied_mm.data.stats import (
    Stats,
    StatsAccumulator,
    flatten_episode_stats,
    image_stats,
    stats_to_json,
    unflatten_episode_stats,
    vector_stats,
)
from embodied_mm.data.video import (
    DEFAULT_CODEC,
    DEFAULT_PIX_FMT,
    concat_videos,
    count_frames,
    encode_video,
)
from embodied_mm.dirlock import LOCK_NAME, exclusive_lock
from embodied_mm.features import ACTION, OBS_STATE, PLAN, camera_of

STAGING_DIR = ".staging"
# Rows per meta/episodes file: a commit rewrites the open file, so this bounds its cost.
DEFAULT_EPISODES_PER_FILE = 100
# What a writer keeps in the dataset root besides LeRobot's files.
WRITER_FILES = (LOCK_NAME, STAGING_DIR)


@dataclass
class StagedEpisode:
    """An episode whose videos are encoded and waiting under ``.staging/`` to be committed."""

    task: str
    state: np.ndarray  # (T, S) float32
    action: np.ndarray  # (T, D) float32
    plan: list[str] | None
    videos: dict[str, Path]  # feature key -> staged mp4
    image_stats: dict[str, Stats] = field(default_factory=dict)
    seed: int = -1
    success: bool = True
    extras: dict[str, np.ndarray] = field(default_factory=dict)  # as Episode.extras

    def __len__(self) -> int:
        return len(self.state)


def stage_episode(
    episode: Episode,
    staging_dir: Path,
    fps: int,
    codec: str = DEFAULT_CODEC,
    pix_fmt: str = DEFAULT_PIX_FMT,
) -> StagedEpisode:
    """Encode an episode's cameras into ``staging_dir`` (the slow, parallelisable part)."""
    staging_dir = Path(staging_dir)
    staging_dir.mkdir(parents=True, exist_ok=True)
    tag = uuid.uuid4().hex
    videos: dict[str, Path] = {}
    stats: dict[str, Stats] = {}
    for key, frames in episode.images.items():
        path = staging_dir / f"{tag}-{camera_of(key)}.mp4"
        encode_video(frames, path, fps, codec=codec, pix_fmt=pix_fmt)
        videos[key] = path
        stats[key] = image_stats(frames)
    return StagedEpisode(
        task=episode.task,
        state=episode.state,
        action=episode.action,
        plan=episode.plan,
        videos=videos,
        image_stats=stats,
        seed=episode.seed,
        success=episode.success,
        extras=episode.extras,
    )


def refuse_to_overwrite(root: Path) -> None:
    """Raise unless ``root`` is missing or empty (the writer's own lock and staging aside).

    A directory with files but no ``meta/info.json`` is never a fresh start: its metadata
    may be lost or unreadable, and a new dataset would overwrite its episodes.
    """
    root = Path(root)
    if (root / fmt.INFO_PATH).exists():
        raise FileExistsError(f"{root} already holds a dataset (use resume to continue it)")
    if not root.is_dir():
        return
    found = sorted(p.name for p in root.iterdir() if p.name not in WRITER_FILES)
    if found:
        shown = ", ".join(found[:5]) + (", ..." if len(found) > 5 else "")
        raise FileExistsError(
            f"{root} holds files ({shown}) but no {fmt.INFO_PATH}: not a dataset that can be "
            "resumed, and a new one would overwrite them; restore its meta/info.json or "
            "choose an empty directory"
        )


class DatasetWriter:
    """Appends episodes to a v3.0 dataset directory (see the module docstring).

    Use as a context manager, or call :meth:`close`, to release the dataset's lock.
    """

    def __init__(
        self,
        root: Path,
        info: dict[str, Any],
        episodes_per_file: int = DEFAULT_EPISODES_PER_FILE,
    ) -> None:
        if episodes_per_file < 1:
            raise ValueError(f"episodes_per_file must be >= 1, got {episodes_per_file}")
        self.root = Path(root)
        self.info = info
        self.episodes_per_file = episodes_per_file
        self.fps: int = int(info["fps"])
        self.features: dict[str, dict[str, Any]] = info["features"]
        self.video_keys = fmt.video_keys(self.features)
        self.codec = (
            self.features[self.video_keys[0]]["info"]["video.codec"]
            if self.video_keys
            else DEFAULT_CODEC
        )
        self.episode_rows: list[dict[str, Any]] = []
        # Running aggregates, so that a commit costs the same at episode 10 and 10_000.
        self._stats = StatsAccumulator()
        self._frames = 0
        # The rows of the last meta/episodes file (the only one a commit rewrites).
        self._open_episodes: pa.Table | None = None
        self.tasks: dict[str, int] = {}
        self._tasks_written = 0  # len(self.tasks) as of the last tasks.parquet write
        self._lock = ExitStack()

    # --- lock ----------------------------------------------------------------------------
    def close(self) -> None:
        """Release the dataset's lock; the dataset on disk is complete after every commit."""
        self._lock.close()

    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- opening -------------------------------------------------------------------------
    @classmethod
    def create(
        cls,
        root: Path,
        features: dict[str, dict[str, Any]],
        fps: int,
        robot_type: str,
        data_files_size_in_mb: float = fmt.DEFAULT_DATA_FILES_SIZE_MB,
        video_files_size_in_mb: float = fmt.DEFAULT_VIDEO_FILES_SIZE_MB,
        *,
        lock: bool = True,
        episodes_per_file: int = DEFAULT_EPISODES_PER_FILE,
    ) -> DatasetWriter:
        """Start a new dataset in a missing or empty directory (see :func:`refuse_to_overwrite`).

        ``lock=False``: the caller already holds ``exclusive_lock(root)`` (the recorder takes
        it before it stages anything) and releases it itself.
        """
        root = Path(root)
        for key in (OBS_STATE, ACTION):
            if key not in features:
                raise ValueError(f"features lack {key!r}")
        with ExitStack() as held:
            if lock:
                held.enter_context(exclusive_lock(root, "dataset"))
            refuse_to_overwrite(root)  # under the lock: nobody creates one meanwhile
            info = fmt.build_info(features=features, fps=fps, robot_type=robot_type)
            info["data_files_size_in_mb"] = data_files_size_in_mb
            info["video_files_size_in_mb"] = video_files_size_in_mb
            writer = cls(root, info, episodes_per_file)
            fsio.make_dirs(root)
            writer._write_metadata()
            writer._lock = held.pop_all()
        return writer

    @classmethod
    def open_for_resume(
        cls,
        root: Path,
        *,
        lock: bool = True,
        episodes_per_file: int = DEFAULT_EPISODES_PER_FILE,
    ) -> DatasetWriter:
        """Continue a v3.0 dataset written by us: drop uncommitted leftovers, keep the rest.

        Raises :class:`~embodied_mm.data.lerobot_format.DatasetFormatError` naming the file
        when ``meta/info.json`` or the episodes table is missing or unreadable. ``lock`` as
        in :meth:`create`.
        """
        root = Path(root)
        if not root.is_dir():
            raise fmt.DatasetFormatError(f"{root}: no such dataset directory")
        with ExitStack() as held:
            if lock:
                held.enter_context(exclusive_lock(root, "dataset"))
            writer = cls._load(root, episodes_per_file)
            writer._remove_uncommitted()
            writer._write_metadata()
            writer._lock = held.pop_all()
        return writer

    @classmethod
    def _load(cls, root: Path, episodes_per_file: int) -> DatasetWriter:
        info = fmt.load_info(root)
        if info["codebase_version"] != fmt.CODEBASE_VERSION:
            raise fmt.DatasetFormatError(
                f"{root / fmt.INFO_PATH}: can only append to {fmt.CODEBASE_VERSION} datasets"
            )
        writer = cls(root, info, episodes_per_file)
        n = int(info["total_episodes"])
        if not n:
            return writer
        files = sorted(root.glob("meta/episodes/chunk-*/file-*.parquet"))
        if not files:
            raise fmt.DatasetFormatError(f"{root / 'meta/episodes'}: no episode tables")
        table = pd.concat([pd.read_parquet(p) for p in files])
        rows = table[table["episode_index"] < n].sort_values("episode_index")
        writer.episode_rows = [_plain_row(r) for r in rows.to_dict("records")]
        if len(writer.episode_rows) != n:
            raise fmt.DatasetFormatError(
                f"{root}: info.json says {n} episodes, the episodes table has "
                f"{len(writer.episode_rows)}"
            )
        for r in writer.episode_rows:
            writer._stats.add(unflatten_episode_stats(r))
        writer._frames = sum(int(r["length"]) for r in writer.episode_rows)
        tasks = pd.read_parquet(root / fmt.TASKS_PATH)
        writer.tasks = {
            str(t): int(i) for t, i in zip(tasks.index, tasks["task_index"], strict=True)
        }
        return writer

    def _remove_uncommitted(self) -> None:
        shutil.rmtree(self.root / STAGING_DIR, ignore_errors=True)
        for tmp in self.root.glob("**/.*.tmp"):
            tmp.unlink()
        used = {self._data_path(*loc) for loc in self._locations("data")}
        used |= {self._episodes_path(*loc) for loc in self._locations("meta/episodes")}
        for key in self.video_keys:
            used |= {self._video_path(key, *loc) for loc in self._locations(f"videos/{key}")}
        patterns = ["data/chunk-*/file-*.parquet", "meta/episodes/chunk-*/file-*.parquet"] + [
            f"videos/{k}/chunk-*/file-*.mp4" for k in self.video_keys
        ]
        for pattern in patterns:
            for path in self.root.glob(pattern):
                if path not in used:
                    path.unlink()
        if not self.episode_rows:
            return
        # The last files may hold the rows/frames of the episode whose commit was cut short.
        last = self.episode_rows[-1]
        n = len(self.episode_rows)
        path = self._data_path(last["data/chunk_index"], last["data/file_index"])
        table = pq.read_table(path)
        if pc.max(table["episode_index"]).as_py() >= n:
            kept = table.filter(pc.less(table["episode_index"], n))
            self._write_parquet(path, kept)
        path = self._episodes_path(
            last["meta/episodes/chunk_index"], last["meta/episodes/file_index"]
        )
        table = pq.read_table(path)
        kept = table.filter(pc.less(table["episode_index"], n))
        if len(kept) < len(table):
            self._write_parquet(path, kept)
        self._open_episodes = kept
        for key in self.video_keys:
            path = self._video_path(
                key, last[f"videos/{key}/chunk_index"], last[f"videos/{key}/file_index"]
            )
            keep = round(float(last[f"videos/{key}/to_timestamp"]) * self.fps)
            if count_frames(path) > keep:
                self._replace_video(path, [(path, keep)])

    def _locations(self, prefix: str) -> set[tuple[int, int]]:
        return {
            (int(r[f"{prefix}/chunk_index"]), int(r[f"{prefix}/file_index"]))
            for r in self.episode_rows
        }

    def _data_path(self, chunk: int, file: int) -> Path:
        return self.root / fmt.DATA_PATH.format(chunk_index=chunk, file_index=file)

    def _video_path(self, key: str, chunk: int, file: int) -> Path:
        return self.root / fmt.VIDEO_PATH.format(video_key=key, chunk_index=chunk, file_index=file)

    def _episodes_path(self, chunk: int, file: int) -> Path:
        return self.root / fmt.EPISODES_PATH.format(chunk_index=chunk, file_index=file)

    def _next_file(self, chunk: int, file: int) -> tuple[int, int]:
        file += 1
        if file >= int(self.info["chunks_size"]):
            chunk, file = chunk + 1, 0
        return chunk, file

    def _place(
        self, prefix: str, path_of, new_bytes: int, limit_mb: float
    ) -> tuple[int, int, bool]:
        """(chunk, file, append?) for the next episode's ``prefix`` file (data or a camera)."""
        if not self.episode_rows:
            return 0, 0, False
        last = self.episode_rows[-1]
        chunk, file = int(last[f"{prefix}/chunk_index"]), int(last[f"{prefix}/file_index"])
        path = path_of(chunk, file)
        if path.stat().st_size + new_bytes <= limit_mb * 1024 * 1024:
            return chunk, file, True
        return (*self._next_file(chunk, file), False)

    def _place_episode_row(self) -> tuple[int, int, bool]:
        """(chunk, file, append?) in meta/episodes for the next episode's row."""
        if not self.episode_rows:
            return 0, 0, False
        last = self.episode_rows[-1]
        chunk = int(last["meta/episodes/chunk_index"])
        file = int(last["meta/episodes/file_index"])
        if self._open_episodes is not None and len(self._open_episodes) < self.episodes_per_file:
            return chunk, file, True
        return (*self._next_file(chunk, file), False)

    def _write_parquet(self, path: Path, table: pa.Table) -> None:
        buf = io.BytesIO()
        # Page checksums let readers detect flipped bytes, not only truncation.
        pq.write_table(table, buf, write_page_checksum=True)
        fmt.atomic_write_bytes(path, buf.getvalue())

    def _move_into_place(self, staged: Path, dst: Path) -> None:
        """Rename a staged file into the dataset, durably: its contents reach the disk before
        the rename (else a power loss could leave the new name on an empty file), and the
        directory entry after it."""
        fsio.fsync_file(staged)
        fsio.make_dirs(dst.parent)
        os.replace(staged, dst)
        fsio.fsync_dir(dst.parent)

    def _replace_video(self, path: Path, parts: list[tuple[Path, int | None]]) -> None:
        tmp = path.parent / f".{path.name}.{uuid.uuid4().hex}.tmp"
        try:
            concat_videos(parts, tmp, self.fps)
            fsio.fsync_file(tmp)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        fmt.fsync_dir(path.parent)

    # --- appending -----------------------------------------------------------------------
    @property
    def staging_dir(self) -> Path:
        return self.root / STAGING_DIR

    @property
    def num_episodes(self) -> int:
        return len(self.episode_rows)

    @property
    def num_frames(self) -> int:
        return self._frames

    def add_episode(self, episode: Episode) -> int:
        """Stage and commit in this process; returns the new episode's index."""
        self._check(episode.state, episode.action, list(episode.images), episode.extras)
        return self.commit(stage_episode(episode, self.staging_dir, self.fps, self.codec))

    def commit(self, staged: StagedEpisode) -> int:
        """Move a staged episode into the dataset and rewrite the metadata (the commit)."""
        self._check(staged.state, staged.action, list(staged.videos), staged.extras)
        ep = self.num_episodes
        start, length = self.num_frames, len(staged)
        task_index = self.tasks.setdefault(staged.task, len(self.tasks))
        columns = _frame_columns(staged, ep, start, task_index, self.fps, PLAN in self.features)
        table = _arrow_table(columns, self.features)
        chunk, file, append = self._place(
            "data", self._data_path, table.nbytes, float(self.info["data_files_size_in_mb"])
        )
        data_path = self._data_path(chunk, file)
        if append:
            old = pq.read_table(data_path)
            old = old.filter(pc.less(old["episode_index"], ep))  # drop a cut-short commit's rows
            table = pa.concat_tables([old, table])
        self._write_parquet(data_path, table)

        row: dict[str, Any] = {
            "episode_index": ep,
            "tasks": [staged.task],
            "length": length,
            "data/chunk_index": chunk,
            "data/file_index": file,
            "dataset_from_index": start,
            "dataset_to_index": start + length,
        }
        for key in self.video_keys:
            prefix = f"videos/{key}"
            staged_path = staged.videos[key]
            chunk, file, append = self._place(
                prefix,
                functools.partial(self._video_path, key),
                staged_path.stat().st_size,
                float(self.info["video_files_size_in_mb"]),
            )
            dst = self._video_path(key, chunk, file)
            if append:
                from_ts = float(self.episode_rows[-1][f"{prefix}/to_timestamp"])
                self._replace_video(dst, [(dst, round(from_ts * self.fps)), (staged_path, None)])
                staged_path.unlink()
            else:
                from_ts = 0.0
                self._move_into_place(staged_path, dst)
            row[f"{prefix}/chunk_index"] = chunk
            row[f"{prefix}/file_index"] = file
            row[f"{prefix}/from_timestamp"] = from_ts
            row[f"{prefix}/to_timestamp"] = from_ts + length / self.fps
        chunk, file, append = self._place_episode_row()
        row["meta/episodes/chunk_index"] = chunk
        row["meta/episodes/file_index"] = file
        stats = {k: vector_stats(v) for k, v in columns.items() if k != PLAN}
        stats.update(staged.image_stats)
        row.update(flatten_episode_stats(stats))
        row["seed"] = int(staged.seed)
        row["success"] = bool(staged.success)
        schema = self._open_episodes.schema if self._open_episodes is not None else None
        new = pa.Table.from_pylist([row], schema=schema)
        # Only the open file's rows (at most episodes_per_file) are rewritten. One chunk: a
        # table of many one-row chunks writes ~50x slower.
        self._open_episodes = (
            pa.concat_tables([self._open_episodes, new]).combine_chunks() if append else new
        )
        self.episode_rows.append(row)
        self._frames += length
        self._stats.add(stats)
        self._write_metadata(episodes_file=self._episodes_path(chunk, file))
        return ep

    def _check(
        self,
        state: np.ndarray,
        action: np.ndarray,
        cameras: list[str],
        extras: dict[str, np.ndarray] | None = None,
    ) -> None:
        extras = extras or {}
        for key, arr in ((OBS_STATE, state), (ACTION, action), *extras.items()):
            want = tuple(self.features[key]["shape"]) if key in self.features else None
            got = arr.shape[1:] or (1,)  # a scalar column is shape (1,)
            if got != want:
                raise ValueError(f"{key}: frames have shape {got}, dataset has {want}")
        declared = set(self.features) - {OBS_STATE, ACTION, PLAN, *fmt.BOOKKEEPING}
        missing = declared - set(self.video_keys) - set(extras)
        if missing:
            raise ValueError(f"episode lacks the dataset's features {sorted(missing)}")
        if set(cameras) != set(self.video_keys):
            raise ValueError(
                f"episode cameras {sorted(cameras)} differ from the dataset's {self.video_keys}"
            )

    # --- metadata ------------------------------------------------------------------------
    def _write_metadata(self, episodes_file: Path | None = None) -> None:
        """Tasks (when there is a new one), ``episodes_file`` (the open episodes-table file,
        when a row was added to it), stats, then info.json: the commit point."""
        n = self.num_episodes
        if self.tasks and (len(self.tasks) != self._tasks_written or episodes_file is None):
            tasks = pd.DataFrame(
                {"task_index": list(self.tasks.values())},
                index=pd.Index(list(self.tasks), name="task"),
            )
            buf = io.BytesIO()
            tasks.to_parquet(buf)
            fmt.atomic_write_bytes(self.root / fmt.TASKS_PATH, buf.getvalue())
            self._tasks_written = len(self.tasks)
        if episodes_file is not None:
            assert self._open_episodes is not None
            self._write_parquet(episodes_file, self._open_episodes)
        if n:
            stats = self._stats.result()
            fmt.atomic_write_json(self.root / fmt.STATS_PATH, stats_to_json(stats))
        self.info.update(
            total_episodes=n,
            total_frames=self.num_frames,
            total_tasks=len(self.tasks),
            splits={"train": f"0:{n}"},
        )
        fmt.atomic_write_json(self.root / fmt.INFO_PATH, self.info)  # the commit point


def _frame_columns(
    staged: StagedEpisode, ep: int, start: int, task_index: int, fps: int, with_plan: bool
) -> dict[str, Any]:
    t = len(staged)
    frame_index = np.arange(t, dtype=np.int64)
    columns: dict[str, Any] = {
        OBS_STATE: staged.state,
        ACTION: staged.action,
        "timestamp": (frame_index / fps).astype(np.float32),
        "frame_index": frame_index,
        "episode_index": np.full(t, ep, dtype=np.int64),
        "index": start + frame_index,
        "task_index": np.full(t, task_index, dtype=np.int64),
    }
    if with_plan:
        columns[PLAN] = list(staged.plan) if staged.plan is not None else [""] * t
    columns.update(staged.extras)
    return columns


def _arrow_table(columns: dict[str, Any], features: dict[str, dict[str, Any]]) -> pa.Table:
    arrays = {}
    for key, values in columns.items():
        if key == PLAN:
            arrays[key] = pa.array(values, type=pa.string())
        elif np.ndim(values) == 2:
            # Fixed-size lists: what LeRobot's HF datasets ``Sequence(length=D)`` stores.
            flat = pa.array(np.ascontiguousarray(values).reshape(-1))
            arrays[key] = pa.FixedSizeListArray.from_arrays(flat, values.shape[1])
        else:
            arrays[key] = pa.array(values)
    order = [k for k in features if k in arrays]
    return pa.table({k: arrays[k] for k in order})


def _plain_row(row: dict[str, Any]) -> dict[str, Any]:
    """An episodes-table row read back by pandas, with numpy containers turned into lists."""

    def plain(v: Any) -> Any:
        if isinstance(v, np.ndarray):
            return [plain(x) for x in v]
        if isinstance(v, np.generic):
            return v.item()
        return v

    return {k: plain(v) for k, v in row.items()}
