"""Observations for checking (and, for static schemes, calibrating) an int8 model.

From a LeRobot dataset (frames spread evenly over its episodes, the policy's cameras resized
to its image size as the camera adapters do) or, without one, seeded random observations.
Both come as batched observations with LeRobot keys, as the runtime passes them to
``predict_chunk``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from embodied_mm.features import OBS_STATE, TASK, image_key


def dataset_observations(config: Any, dataset: str | Path, n: int, skip: int = 0) -> dict[str, Any]:
    """``n`` frames of the LeRobot dataset at ``dataset``, evenly spaced over all its frames
    (``skip`` shifts the picks, so two calls can take disjoint frames)."""
    import cv2

    from embodied_mm.data.torch_dataset import LeRobotWindowDataset

    data = LeRobotWindowDataset(dataset)
    missing = [image_key(c) for c in config.cameras if image_key(c) not in data.camera_keys]
    if missing or OBS_STATE not in data.meta.features:
        raise ValueError(
            f"calibration dataset {dataset} lacks {missing or [OBS_STATE]}; the policy needs "
            f"cameras {list(config.cameras)} and {OBS_STATE}"
        )
    if len(data) < n:
        raise ValueError(f"calibration dataset {dataset} has {len(data)} frames; need {n}")
    stride = len(data) / n
    picks = [(int(i * stride) + skip) % len(data) for i in range(n)]
    s = config.image_size
    obs: dict[str, list[Any]] = {image_key(c): [] for c in config.cameras}
    obs[OBS_STATE], obs[TASK] = [], []
    for i in picks:
        item = data[i]
        for cam in config.cameras:
            chw = item[image_key(cam)].numpy()  # (3, H, W) float32 in [0, 1]
            hwc = np.round(chw.transpose(1, 2, 0) * 255).astype(np.uint8)  # (H, W, 3)
            if hwc.shape[:2] != (s, s):
                hwc = cv2.resize(hwc, (s, s), interpolation=cv2.INTER_AREA)
            obs[image_key(cam)].append(hwc)
        state = item[OBS_STATE].numpy()
        if state.shape != (config.state_dim,):
            raise ValueError(
                f"calibration dataset {dataset}: {OBS_STATE} has shape {state.shape}; the "
                f"policy takes ({config.state_dim},)"
            )
        obs[OBS_STATE].append(state)
        obs[TASK].append(item[TASK])
    batched: dict[str, Any] = {k: np.stack(v) for k, v in obs.items() if k != TASK}
    batched[TASK] = obs[TASK]  # each image (N, H, W, 3) uint8, state (N, S) float32
    return batched


def observations(
    config: Any, n: int, dataset: str | Path | None, seed: int
) -> tuple[dict[str, Any], str]:
    """``n`` observations and a description of their source for the manifest. Without a
    dataset: uniform uint8 images, standard-normal state, a few instructions."""
    from embodied_mm.export.ort_policy import random_observation

    if dataset is None:
        return random_observation(config, n, seed), f"random (seed {seed})"
    return dataset_observations(config, dataset, n, skip=seed), f"dataset {Path(dataset)}"
