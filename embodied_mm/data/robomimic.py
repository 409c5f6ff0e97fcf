"""Converting robomimic HDF5 demonstrations to our LeRobot v3.0 format.

robomimic layout: ``data/demo_<i>/actions`` (T, D) and ``data/demo_<i>/obs/<key>``: image
observations are (T, H, W, 3) uint8 (``agentview_image`` → camera ``agentview``), low-dim
ones (T, k) float. ``observation.state`` is the concatenation of the low-dim keys (sorted by
name unless ``state_keys`` gives the order); ``data.attrs["env_args"]`` (JSON) names the env.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from embodied_mm.data.episode import Episode
from embodied_mm.data.lerobot_format import build_features
from embodied_mm.data.video import DEFAULT_CODEC
from embodied_mm.data.writer import DatasetWriter
from embodied_mm.features import image_key

IMAGE_SUFFIX = "_image"


def _demo_order(name: str) -> tuple[int, str]:
    m = re.fullmatch(r"demo_(\d+)", name)
    return (int(m.group(1)) if m else 1 << 62, name)


def import_robomimic(
    hdf5: Path,
    out: Path,
    *,
    fps: int = 20,
    task: str | None = None,
    state_keys: Sequence[str] | None = None,
    codec: str = DEFAULT_CODEC,
) -> int:
    """Convert every demo in ``hdf5``; returns the number of episodes written."""
    import h5py

    hdf5 = Path(hdf5)
    try:
        f = h5py.File(hdf5, "r")
    except OSError as e:
        raise ValueError(f"{hdf5}: not a readable HDF5 file ({e})") from e
    with f:
        if "data" not in f or not len(f["data"]):
            raise ValueError(f"{hdf5}: no 'data/demo_<i>' groups (is this a robomimic file?)")
        data = f["data"]
        env_name = "robomimic"
        if "env_args" in data.attrs:
            env_name = json.loads(data.attrs["env_args"]).get("env_name", env_name)
        instruction = task or f"{env_name} demonstration"
        demos = sorted(data.keys(), key=_demo_order)
        first = data[demos[0]]
        for need in ("actions", "obs"):
            if need not in first:
                raise ValueError(f"{hdf5}: data/{demos[0]} lacks {need!r}")
        obs0 = first["obs"]
        cams = sorted(k for k in obs0 if _is_image(obs0[k]))
        low_dim = list(state_keys) if state_keys else sorted(k for k in obs0 if k not in cams)
        missing = [k for k in low_dim if k not in obs0]
        if missing:
            raise ValueError(f"{hdf5}: data/{demos[0]}/obs lacks {missing}; has {sorted(obs0)}")
        if not low_dim:
            raise ValueError(f"{hdf5}: no low-dimensional observations to use as state")
        state_names = [f"{k}_{i}" for k in low_dim for i in range(int(np.prod(obs0[k].shape[1:])))]
        action_dim = int(first["actions"].shape[1])
        features = build_features(
            state_dim=len(state_names),
            action_dim=action_dim,
            cameras={_camera(k): tuple(obs0[k].shape[1:3]) for k in cams},
            fps=fps,
            codec=codec,
            state_names=state_names,
            with_plan=False,
        )
        with DatasetWriter.create(out, features, fps, robot_type=env_name) as writer:
            for name in demos:
                demo = data[name]
                t = int(demo["actions"].shape[0])
                state = np.concatenate(
                    [np.asarray(demo["obs"][k], dtype=np.float32).reshape(t, -1) for k in low_dim],
                    axis=1,
                )  # (T, S)
                writer.add_episode(
                    Episode(
                        task=instruction,
                        state=state,
                        action=np.asarray(demo["actions"], dtype=np.float32),
                        images={
                            image_key(_camera(k)): np.asarray(demo["obs"][k], dtype=np.uint8)
                            for k in cams
                        },
                        plan=None,
                        seed=_demo_order(name)[0] if name.startswith("demo_") else -1,
                    )
                )
            return writer.num_episodes


def _is_image(ds) -> bool:
    return ds.ndim == 4 and ds.shape[-1] == 3 and ds.dtype == np.uint8


def _camera(key: str) -> str:
    return key[: -len(IMAGE_SUFFIX)] if key.endswith(IMAGE_SUFFIX) else key
