"""Synthetic episodes: real arrays that move (so codec and indexing errors show), no env."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from embodied_mm.data.episode import Episode
from embodied_mm.data.lerobot_format import build_features
from embodied_mm.data.writer import DatasetWriter
from embodied_mm.features import image_key

FPS = 10
STATE_DIM, ACTION_DIM, HW = 15, 8, (32, 48)


def synthetic_frames(length: int, seed: int, hw: tuple[int, int] = HW) -> np.ndarray:
    """(T, H, W, 3) uint8: a smooth gradient whose phase moves with t (codec friendly)."""
    h, w = hw
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    t = np.arange(length, dtype=np.float32)[:, None, None]
    base = 128 + 90 * np.sin(x / 7.0 + 0.3 * t + seed) * np.cos(y / 9.0 - 0.2 * t)
    rgb = np.stack([base, 255 - base, np.broadcast_to(40 + 4 * t, base.shape)], axis=-1)
    return np.clip(rgb, 0, 255).astype(np.uint8)


def synthetic_episode(length: int, seed: int, task: str = "lift the red cube") -> Episode:
    rng = np.random.default_rng(seed)
    return Episode(
        task=task,
        state=rng.normal(size=(length, STATE_DIM)).astype(np.float32),
        action=rng.normal(size=(length, ACTION_DIM)).astype(np.float32),
        images={
            image_key("front"): synthetic_frames(length, seed),
            image_key("wrist"): synthetic_frames(length, seed + 100)[:, ::-1].copy(),
        },
        plan=[f"step {t // 4} of ep {seed}" for t in range(length)],
        seed=seed,
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
    writer = DatasetWriter.create(root, synthetic_features(), FPS, robot_type="synthetic")
    episodes = []
    for i, n in enumerate(lengths):
        task = tasks[i] if tasks else "lift the red cube"
        ep = synthetic_episode(n, seed=i, task=task)
        writer.add_episode(ep)
        episodes.append(ep)
    return episodes


@pytest.fixture
def small_dataset(tmp_path: Path) -> tuple[Path, list[Episode]]:
    root = tmp_path / "ds"
    episodes = write_synthetic(root, [12, 7, 15], tasks=["lift the red cube", "push", "push"])
    return root, episodes
