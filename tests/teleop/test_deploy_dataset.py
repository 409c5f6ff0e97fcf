"""The dataset deploy --record writes, opened the ways a user can get wrong: an existing one
without --resume, one from `record` (no intervention flags), one another process writes."""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from embodied_mm.data.check import check_dataset
from embodied_mm.data.deploy_dataset import DeployDataset
from embodied_mm.data.episode import EpisodeBuffer
from embodied_mm.data.teleop_recorder import dataset_features, robot_type
from embodied_mm.data.writer import DatasetWriter
from embodied_mm.dirlock import DirectoryLockedError, exclusive_lock
from embodied_mm.errors import UsageError
from embodied_mm.features import INTERVENTION, TASK
from embodied_mm.runtime.adapters.sim import SimRobot


@pytest.fixture(scope="module")
def robot():
    bot = SimRobot("embodied_mm/PickLift-v0")
    bot.connect()
    yield bot
    bot.disconnect()


def holding(robot, frames: int, flags: bool = True) -> EpisodeBuffer:
    """``frames`` steps of the robot holding still, as the loop buffers them."""
    buffer = EpisodeBuffer()
    for i in range(frames):
        obs = robot.get_observation()
        hold = robot.hold_action()
        robot.send_action(hold)
        extras = {INTERVENTION: i % 2 == 1} if flags else None
        buffer.add({**obs.frame, TASK: "hold"}, hold, extras=extras)
    return buffer


def test_an_existing_dataset_needs_resume_and_resume_continues_the_seeds(robot, tmp_path):
    root = tmp_path / "ds"
    with DeployDataset(root, robot, 20) as ds:
        assert ds.next_seed(3) == 3
        assert ds.commit(holding(robot, 4), seed=3, success=False) == 0
        assert ds.commit(EpisodeBuffer(), seed=4, success=True) is None  # nothing to keep
    with pytest.raises(UsageError, match="already holds a dataset; pass --resume"):
        DeployDataset(root, robot, 20).__enter__()
    with DeployDataset(root, robot, 20, resume=True) as ds:
        assert ds.num_episodes == 1 and ds.next_seed(0) == 4
        assert ds.commit(holding(robot, 3), seed=4, success=True) == 1
    with pytest.raises(UsageError, match="recorded at 20 fps, not 30"):
        DeployDataset(root, robot, 30, resume=True).__enter__()


def test_a_dataset_without_intervention_flags_is_not_continued(robot, tmp_path):
    root = tmp_path / "demos"
    episode = holding(robot, 3, flags=False).finish()
    features = dataset_features(robot, episode, 20, "h264")
    assert INTERVENTION not in features
    with DatasetWriter.create(root, features, 20, robot_type=robot_type(robot)) as writer:
        writer.add_episode(episode)
    with pytest.raises(UsageError, match="has no 'intervention' feature"):
        DeployDataset(root, robot, 20, resume=True).__enter__()


def test_a_dataset_another_process_writes_is_refused(robot, tmp_path):
    root = tmp_path / "ds"
    with exclusive_lock(root, "dataset"), pytest.raises(DirectoryLockedError, match="in use"):
        DeployDataset(root, robot, 20).__enter__()


def test_frames_of_one_episode_give_the_same_extras(robot):
    buffer = holding(robot, 1)
    with pytest.raises(ValueError, match="frame extras"):
        buffer.add({}, np.zeros(7))


def test_dataset_check_accepts_the_flags_and_names_a_value_that_is_not_one(robot, tmp_path):
    root = tmp_path / "ds"
    with DeployDataset(root, robot, 20) as ds:
        ds.commit(holding(robot, 4), seed=0, success=True)
    report = check_dataset(root)
    assert report.ok, report.errors
    path = next(root.glob("data/*/*.parquet"))
    table = pq.read_table(path)
    flags = pa.array(np.array([0, 1, 2, 1], dtype=np.uint8))
    pq.write_table(table.set_column(table.schema.get_field_index(INTERVENTION), INTERVENTION,
                                    flags), path)  # fmt: skip
    report = check_dataset(root)
    assert any("'intervention' holds [2]" in e for e in report.errors), report.errors
