"""Synthetic episodes with real, moving content: for benchmarks and tests without a simulator.

Images are smooth gradients whose phase moves with time (compressible like a rendered scene,
and every frame differs, so an off-by-one frame shows up as a large pixel error).
"""

from __future__ import annotations

import numpy as np

from embodied_mm.data.episode import Episode
from embodied_mm.features import image_key


def synthetic_frames(length: int, seed: int, hw: tuple[int, int]) -> np.ndarray:
    """(T, H, W, 3) uint8."""
    h, w = hw
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    t = np.arange(length, dtype=np.float32)[:, None, None]
    base = 128 + 90 * np.sin(x / 7.0 + 0.3 * t + seed) * np.cos(y / 9.0 - 0.2 * t)
    rgb = np.stack([base, 255 - base, np.broadcast_to(40 + 4 * (t % 50), base.shape)], axis=-1)
    return np.clip(rgb, 0, 255).astype(np.uint8)


def synthetic_episode(
    length: int,
    seed: int,
    task: str = "lift the red cube",
    state_dim: int = 15,
    action_dim: int = 7,
    hw: tuple[int, int] = (128, 128),
    cameras: tuple[str, ...] = ("front", "wrist"),
) -> Episode:
    rng = np.random.default_rng(seed)
    return Episode(
        task=task,
        state=rng.normal(size=(length, state_dim)).astype(np.float32),
        action=rng.normal(size=(length, action_dim)).astype(np.float32),
        images={
            image_key(cam): synthetic_frames(length, seed + 100 * i, hw)
            for i, cam in enumerate(cameras)
        },
        plan=[f"phase {t // 4} of episode {seed}" for t in range(length)],
        seed=seed,
    )
