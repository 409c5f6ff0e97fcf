"""The dataset ``deploy --record DIR`` writes: every episode of a deployment, as LeRobot v3.0.

Each frame is what the robot saw and the command it was sent (after the safety filter), with
``intervention`` (uint8): 1 when a person drove that step (``deploy --teleop``), 0 when the
policy did. That is the DAgger-style record ``train --intervention-weight`` learns from.

Crash safety is the recorders' (:mod:`embodied_mm.data.recorder`,
:mod:`embodied_mm.data.teleop_recorder`): the dataset's lock is held for the whole run and
each episode is committed through :class:`~embodied_mm.data.writer.DatasetWriter` when it
ends, so a ``kill -9`` loses at most the episode in progress, and ``--resume`` continues after
the last committed one (seeds continue too).
"""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

import pyarrow as pa

from embodied_mm.data import lerobot_format as fmt
from embodied_mm.data.episode import EpisodeBuffer
from embodied_mm.data.reader import DatasetMeta
from embodied_mm.data.teleop_recorder import check_resumable, dataset_features, robot_type
from embodied_mm.data.video import DEFAULT_CODEC
from embodied_mm.data.writer import DatasetWriter, refuse_to_overwrite
from embodied_mm.dirlock import exclusive_lock
from embodied_mm.errors import UsageError
from embodied_mm.features import INTERVENTION
from embodied_mm.runtime.robot import Robot


def record_fps(hz: float) -> int:
    """The dataset's fps for a control rate: LeRobot datasets have a whole number."""
    if float(hz) != round(hz) or hz < 1:
        raise UsageError(f"--record needs a whole-number --hz (the dataset's fps), got {hz:g}")
    return round(hz)


class DeployDataset:
    """Open with ``with``: holds the lock, creates the dataset at the first commit (or
    continues it with ``resume``).

    Raises (on entering):
        DirectoryLockedError: another process writes to ``root``.
        UsageError: ``root`` holds a dataset and ``resume`` is off, holds other files, or
            holds a dataset this robot cannot continue (rate, sizes, cameras, no
            ``intervention`` feature).
    """

    def __init__(
        self,
        root: Path,
        robot: Robot,
        fps: int,
        resume: bool = False,
        codec: str = DEFAULT_CODEC,
    ) -> None:
        self.root = Path(root)
        self.robot = robot
        self.fps = fps
        self.resume = resume
        self.codec = codec
        self.writer: DatasetWriter | None = None
        self._held = ExitStack()

    def __enter__(self) -> DeployDataset:
        with ExitStack() as held:
            held.enter_context(exclusive_lock(self.root, "dataset"))
            if (self.root / fmt.INFO_PATH).exists():
                if not self.resume:
                    raise UsageError(
                        f"--record {self.root} already holds a dataset; pass --resume to "
                        "continue it"
                    )
                writer = held.enter_context(DatasetWriter.open_for_resume(self.root, lock=False))
                check_resumable(writer, self.robot, self.fps)
                if INTERVENTION not in writer.features:
                    raise UsageError(
                        f"cannot resume {self.root}: it has no {INTERVENTION!r} feature (not "
                        "recorded by deploy --record)"
                    )
                self.writer = writer
            else:
                try:
                    refuse_to_overwrite(self.root)
                except FileExistsError as e:
                    raise UsageError(str(e)) from e
            self._held = held.pop_all()
        return self

    def __exit__(self, *exc: object) -> None:
        self._held.close()

    @property
    def num_episodes(self) -> int:
        return self.writer.num_episodes if self.writer is not None else 0

    def next_seed(self, first: int) -> int:
        """The seed of the next episode: ``first``, or after the committed episodes' seeds."""
        rows = self.writer.episode_rows if self.writer is not None else []
        return max([first, *(int(r.get("seed", -1)) + 1 for r in rows)])

    def commit(self, buffer: EpisodeBuffer, seed: int, success: bool) -> int | None:
        """Write one finished episode; its index, or None when it has no frames."""
        if len(buffer) == 0:
            return None
        episode = buffer.finish(seed=seed, success=success)
        if self.writer is None:
            features = dataset_features(self.robot, episode, self.fps, self.codec)
            self.writer = DatasetWriter.create(
                self.root, features, self.fps, robot_type=robot_type(self.robot), lock=False
            )
            self._held.enter_context(self.writer)
        return self.writer.add_episode(episode)


def intervention_frames(meta: DatasetMeta) -> int | None:
    """How many of a dataset's frames a person drove; None without the feature."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    if INTERVENTION not in meta.features:
        return None
    kept = sorted(e.episode_index for e in meta.episodes)
    total = 0
    for path in dict.fromkeys(e.data_file for e in meta.episodes):
        table = pq.read_table(path, columns=["episode_index", INTERVENTION])
        table = table.filter(pc.is_in(table["episode_index"], value_set=pa.array(kept)))
        total += int(pc.sum(table[INTERVENTION]).as_py() or 0)
    return total
