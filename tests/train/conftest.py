"""A small real dataset (parquet + mp4 written by our writer) that fits the tiny recipes."""

from __future__ import annotations

from pathlib import Path

import pytest

from embodied_mm.data import synthetic
from embodied_mm.data.lerobot_format import build_features
from embodied_mm.data.writer import DatasetWriter

HW = (32, 32)


def write_dataset(root: Path, lengths: list[int], action_dim: int = 7) -> Path:
    features = build_features(
        state_dim=15, action_dim=action_dim, cameras={"front": HW, "wrist": HW}, fps=20,
        codec="h264",
    )  # fmt: skip
    with DatasetWriter.create(root, features, 20, robot_type="synthetic") as writer:
        for i, n in enumerate(lengths):
            writer.add_episode(
                synthetic.synthetic_episode(n, seed=i, action_dim=action_dim, hw=HW,
                                            task=f"pick up the {'red' if i % 2 else 'blue'} cube")
            )  # fmt: skip
    return root


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("train") / "ds", [20, 16, 12])
