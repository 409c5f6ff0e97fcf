"""Small synthetic datasets written by the real writer (real parquet, real mp4)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from embodied_mm.data import synthetic
from embodied_mm.data.episode import Episode
from embodied_mm.data.lerobot_format import build_features
from embodied_mm.data.writer import DatasetWriter

FPS = 10
STATE_DIM, ACTION_DIM, HW = 15, 8, (32, 48)


def synthetic_episode(length: int, seed: int, task: str = "lift the red cube") -> Episode:
    return synthetic.synthetic_episode(
        length, seed, task, state_dim=STATE_DIM, action_dim=ACTION_DIM, hw=HW
    )


def synthetic_features(fps: int = FPS) -> dict:
    return build_features(
        state_dim=STATE_DIM,
        action_dim=ACTION_DIM,
        cameras={"front": HW, "wrist": HW},
        fps=fps,
        codec="h264",
    )


def write_synthetic(root: Path, lengths: list[int], tasks: list[str] | None = None) -> list:
    episodes = []
    with DatasetWriter.create(root, synthetic_features(), FPS, robot_type="synthetic") as writer:
        for i, n in enumerate(lengths):
            ep = synthetic_episode(n, seed=i, task=tasks[i] if tasks else "lift the red cube")
            writer.add_episode(ep)
            episodes.append(ep)
    return episodes


def episodes_table(root: Path) -> pd.DataFrame:
    """Every row of every meta/episodes file, committed or not, in episode order."""
    files = sorted(Path(root).glob("meta/episodes/chunk-*/file-*.parquet"))
    table = pd.concat([pd.read_parquet(p) for p in files], ignore_index=True)
    return table.sort_values("episode_index", ignore_index=True)


@pytest.fixture
def small_dataset(tmp_path: Path) -> tuple[Path, list[Episode]]:
    root = tmp_path / "ds"
    episodes = write_synthetic(root, [12, 7, 15], tasks=["lift the red cube", "push", "push"])
    return root, episodes


def crash_at_the_commit_point(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the writer's next ``info.json`` write raise, as a crash at the commit point would
    (the episode's files are in place, the metadata does not name them yet)."""
    from embodied_mm.data import writer as writer_mod

    real = writer_mod.fmt.atomic_write_json

    def crash_on_info(path, obj):
        if path.name == "info.json":
            raise KeyboardInterrupt("simulated crash at the commit point")
        real(path, obj)

    monkeypatch.setattr(writer_mod.fmt, "atomic_write_json", crash_on_info)
