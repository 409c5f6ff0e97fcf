"""Per-episode appearance randomisation (lighting, camera pose, table), drawn from the
episode's seeded RNG so that ``reset(seed)`` reproduces it exactly."""

from __future__ import annotations

import numpy as np

from embodied_mm.envs.engine import TABLE_TEXTURES, Randomization, SceneSpec

LIGHT_DIR_JITTER = 0.35  # added to the unit-ish key-light direction, per axis
LIGHT_INTENSITY = (0.7, 1.25)  # multiplier of the nominal key light
CAMERA_POS_JITTER = 0.025  # m per axis, world-mounted cameras only (the wrist cam rides the hand)


def sample_randomization(rng: np.random.Generator, scene: SceneSpec) -> Randomization:
    """Random lighting, camera jitter and table look for one episode."""
    base = np.array(scene.table_rgba[:3])
    # Keep the table darker and less saturated than the palette so objects stay visible.
    table_rgb = np.clip(base * rng.uniform(0.6, 1.3) + rng.uniform(-0.08, 0.08, size=3), 0, 1)
    return Randomization(
        light_dir_jitter=tuple(rng.uniform(-LIGHT_DIR_JITTER, LIGHT_DIR_JITTER, size=3)),
        light_intensity=float(rng.uniform(*LIGHT_INTENSITY)),
        camera_pos_jitter={
            cam.name: tuple(rng.uniform(-CAMERA_POS_JITTER, CAMERA_POS_JITTER, size=3))
            for cam in scene.cameras
            if cam.mount == "world"
        },
        table_rgba=(*(float(c) for c in table_rgb), 1.0),
        table_texture=TABLE_TEXTURES[int(rng.integers(len(TABLE_TEXTURES)))],
    )
