"""A torch Dataset of windows over a LeRobot dataset, with LeRobot's delta_timestamps semantics.

``delta_timestamps`` maps a feature to the time offsets (seconds, multiples of 1/fps) to
fetch around the sampled frame, e.g. an observation history ``[-0.1, -0.05, 0.0]`` and an
action chunk ``[0.0, 0.05, ..., 0.35]``. Offsets that fall outside the episode are clamped
to its first/last frame and flagged in ``<feature>_is_pad`` (True = padding), as LeRobot does.

A sample (``T`` = number of offsets of that feature; features without offsets have no T):

- ``observation.images.<cam>``: float32 (T, 3, H, W) or (3, H, W), values in [0, 1]
  (LeRobot's convention); with ``image_format="uint8"`` the decoded frames as they are,
  uint8 (T, H, W, 3) or (H, W, 3): what a camera gives the policy at run time, so training
  batches take the same path through the policy's processor pipeline (``camera_pixels``) as
  deployment, at a quarter of the memory per batch
- ``observation.state``: float32 (T, S) or (S,);  ``action``: float32 (K, D) or (D,)
- ``<feature>_is_pad``: bool (T,) for every feature with offsets
- ``task``: str;  ``plan``: str (at the sampled frame, when the dataset has it)
- ``timestamp``, ``frame_index``, ``episode_index``, ``index``, ``task_index``: scalars
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from embodied_mm.data.reader import DatasetMeta, EpisodeRef, load_frames
from embodied_mm.data.video import DEFAULT_TOLERANCE_S, DecoderPool
from embodied_mm.features import (
    ACTION,
    FINAL_STATE,
    FIRST_PHASE_STATE,
    OBS_STATE,
    PHASE_END_STATE,
    PLAN,
    TASK,
)

BOOKKEEPING_KEYS = ("timestamp", "frame_index", "episode_index", "index", "task_index")
IMAGE_FORMATS = ("float", "uint8")


def chunk_delta_timestamps(
    fps: int, n_obs_steps: int, chunk_size: int, obs_keys: Sequence[str]
) -> dict[str, list[float]]:
    """Offsets for ``n_obs_steps`` of observation history and a ``chunk_size`` action chunk."""
    if n_obs_steps < 1 or chunk_size < 1:
        raise ValueError(
            f"n_obs_steps and chunk_size must be >= 1, got {n_obs_steps}, {chunk_size}"
        )
    obs = [i / fps for i in range(1 - n_obs_steps, 1)]
    deltas = {key: list(obs) for key in obs_keys}
    deltas[ACTION] = [i / fps for i in range(chunk_size)]
    return deltas


def delta_indices(
    delta_timestamps: dict[str, Sequence[float]], fps: int, tolerance_s: float
) -> dict[str, np.ndarray]:
    """Offsets in frames; every offset must be a multiple of 1/fps within ``tolerance_s``."""
    out = {}
    for key, deltas in delta_timestamps.items():
        d = np.asarray(deltas, dtype=np.float64)
        if d.ndim != 1 or len(d) == 0:
            raise ValueError(f"delta_timestamps[{key!r}] must be a non-empty list of seconds")
        frames = np.round(d * fps)
        bad = np.abs(frames / fps - d) > tolerance_s
        if bad.any():
            raise ValueError(
                f"delta_timestamps[{key!r}] = {d[bad].tolist()} are not multiples of 1/fps "
                f"= {1 / fps:.6f}s (tolerance {tolerance_s}s)"
            )
        out[key] = frames.astype(np.int64)
    return out


class LeRobotWindowDataset(Dataset):
    """Windows of a local LeRobot dataset (v3.0 or v2.1); see the module docstring."""

    def __init__(
        self,
        root: Path | str,
        delta_timestamps: dict[str, Sequence[float]] | None = None,
        episodes: Sequence[int] | None = None,
        tolerance_s: float = DEFAULT_TOLERANCE_S,
        max_open_videos: int = 64,
        final_state: bool = False,
        image_format: str = "float",
    ) -> None:
        """``final_state``: also give each sample its episode's last ``observation.state``
        (key ``episode_final_state``), that of the last frame of its first plan phase
        (``episode_first_phase_state``) and that of the last frame of the sample's own plan
        phase (``episode_phase_end_state``), the targets of the policy's goal-prediction loss.
        ``image_format``: ``"float"`` or ``"uint8"`` (see the module docstring)."""
        if image_format not in IMAGE_FORMATS:
            raise ValueError(f"image_format must be one of {IMAGE_FORMATS}; got {image_format!r}")
        self.image_format = image_format
        self.meta = DatasetMeta(Path(root))
        in_parquet = [k for k, f in self.meta.features.items() if f.get("dtype") == "image"]
        if in_parquet:
            raise ValueError(
                f"{self.meta.root}: cameras {in_parquet} are stored as images inside the parquet "
                "files; only cameras stored as videos are supported"
            )
        if episodes is not None:
            wanted = set(episodes)
            unknown = wanted - {e.episode_index for e in self.meta.episodes}
            if unknown:
                raise ValueError(f"episodes {sorted(unknown)} are not in {self.meta.root}")
            self.meta.episodes = [e for e in self.meta.episodes if e.episode_index in wanted]
        self.tolerance_s = tolerance_s
        if final_state and OBS_STATE not in self.meta.features:
            raise ValueError(f"{self.meta.root}: final_state needs {OBS_STATE!r}, which it lacks")
        self.final_state = final_state
        delta_timestamps = dict(delta_timestamps or {})
        unknown_keys = set(delta_timestamps) - set(self.meta.features)
        if unknown_keys:
            raise ValueError(
                f"delta_timestamps for unknown features {sorted(unknown_keys)}; "
                f"the dataset has {sorted(self.meta.features)}"
            )
        text = [k for k in delta_timestamps if self.meta.features[k].get("dtype") == "string"]
        if text:
            raise ValueError(f"delta_timestamps cannot window text features {text}")
        self.delta_indices = delta_indices(delta_timestamps, self.meta.fps, tolerance_s)
        self.frames = load_frames(self.meta)
        # Row r belongs to episode _row_episode[r]; its rows are [start, end) of self.frames.
        lengths = np.array([e.length for e in self.meta.episodes], dtype=np.int64)
        self._ep_start = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        self._ep_end = self._ep_start + lengths
        self._row_episode = np.repeat(np.arange(len(lengths)), lengths)
        # the end row (exclusive) of each episode's first plan phase and of the phase each row
        # is in (the episode's end without plan labels)
        self._phase_end = self._ep_end[self._row_episode].copy()
        if PLAN in self.frames.columns:
            plans = np.asarray(self.frames.columns[PLAN], dtype=object)
            # a row starts a phase where its label differs from the row before in its episode
            starts = np.ones(len(plans), dtype=bool)
            starts[1:] = plans[1:] != plans[:-1]
            starts[self._ep_start] = True
            ends = np.append(np.nonzero(starts)[0][1:], len(plans))  # each phase's end row
            self._phase_end = ends[np.cumsum(starts) - 1]
        self._first_phase_end = self._phase_end[self._ep_start]
        self._decoders = DecoderPool(max_open=max_open_videos)
        self.numeric_keys = [
            k
            for k, f in self.meta.features.items()
            if f.get("dtype") not in ("video", "image", "string") and k not in BOOKKEEPING_KEYS
        ]

    @property
    def fps(self) -> int:
        return self.meta.fps

    @property
    def camera_keys(self) -> list[str]:
        return self.meta.video_keys

    @property
    def stats(self):
        return self.meta.stats

    @property
    def decoded_frames(self) -> int:
        """Frames decoded by this process so far (benchmarks report decode cost per frame)."""
        return self._decoders.decoded_frames()

    def __len__(self) -> int:
        return len(self.frames)

    def __getstate__(self) -> dict:
        # Open decoders cannot cross a process boundary; each worker opens its own.
        state = self.__dict__.copy()
        state["_decoders"] = DecoderPool(max_open=self._decoders.max_open)
        return state

    def __getitem__(self, i: int) -> dict[str, object]:
        if not 0 <= i < len(self):
            raise IndexError(f"index {i} out of range for {len(self)} frames")
        e = int(self._row_episode[i])
        ep, start, end = self.meta.episodes[e], int(self._ep_start[e]), int(self._ep_end[e])
        cols = self.frames.columns
        item: dict[str, object] = {}
        for key in BOOKKEEPING_KEYS:
            item[key] = torch.as_tensor(cols[key][i])
        for key in self.numeric_keys:
            if key in self.delta_indices:
                rows, pad = self._window(i, start, end, self.delta_indices[key])
                item[key] = torch.from_numpy(np.ascontiguousarray(cols[key][rows]))  # (T, *S)
                item[f"{key}_is_pad"] = torch.from_numpy(pad)  # (T,)
            else:
                item[key] = torch.from_numpy(np.ascontiguousarray(cols[key][i]))  # (*S,)
        for key in self.meta.video_keys:
            if key in self.delta_indices:
                rows, pad = self._window(i, start, end, self.delta_indices[key])
                item[key] = self._images(ep, key, cols["timestamp"][rows])  # (T, 3, H, W)
                item[f"{key}_is_pad"] = torch.from_numpy(pad)
            else:
                item[key] = self._images(ep, key, cols["timestamp"][[i]])[0]  # (3, H, W)
        if self.final_state:
            item[FINAL_STATE] = torch.from_numpy(np.ascontiguousarray(cols[OBS_STATE][end - 1]))
            first, phase = int(self._first_phase_end[e]), int(self._phase_end[i])
            item[FIRST_PHASE_STATE] = torch.from_numpy(
                np.ascontiguousarray(cols[OBS_STATE][first - 1])
            )
            item[PHASE_END_STATE] = torch.from_numpy(
                np.ascontiguousarray(cols[OBS_STATE][phase - 1])
            )
        item[TASK] = self.meta.tasks[int(cols["task_index"][i])]
        if PLAN in cols:
            item[PLAN] = cols[PLAN][i]
        return item

    @staticmethod
    def _window(i: int, start: int, end: int, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rows = i + offsets  # (T,)
        pad = (rows < start) | (rows >= end)
        return np.clip(rows, start, end - 1), pad

    def _images(self, ep: EpisodeRef, key: str, timestamps: np.ndarray) -> torch.Tensor:
        path, from_ts = ep.videos[key]
        decoder = self._decoders.get(path)
        query = [from_ts + float(t) for t in timestamps]
        frames = decoder.frames_at(query, self.tolerance_s)  # (T, H, W, 3) uint8
        if self.image_format == "uint8":
            return torch.from_numpy(np.ascontiguousarray(frames))
        # (T, H, W, 3) uint8 -> (T, 3, H, W) float32 in [0, 1], LeRobot's image convention.
        # Done in numpy: single-threaded, so a sample never waits on torch's intra-op thread
        # pool (which, on 2 busy cores, made these small casts ~50x slower).
        chw = np.ascontiguousarray(frames.transpose(0, 3, 1, 2))  # (T, 3, H, W) uint8
        return torch.from_numpy(chw.astype(np.float32) * np.float32(1.0 / 255.0))


def build_window_dataset(
    root: Path | str,
    n_obs_steps: int = 1,
    chunk_size: int = 8,
    episodes: Sequence[int] | None = None,
    final_state: bool = False,
    image_format: str = "float",
) -> LeRobotWindowDataset:
    """The usual training view: state + images history of ``n_obs_steps``, K-action chunks
    (and with ``final_state`` each episode's last state, ``image_format``: see
    :class:`LeRobotWindowDataset`)."""
    meta = DatasetMeta(Path(root))
    obs_keys = [OBS_STATE, *meta.video_keys] if n_obs_steps > 1 else []
    deltas = chunk_delta_timestamps(meta.fps, n_obs_steps, chunk_size, obs_keys)
    if n_obs_steps == 1:
        deltas = {ACTION: deltas[ACTION]}
    return LeRobotWindowDataset(
        root, deltas, episodes=episodes, final_state=final_state, image_format=image_format
    )
