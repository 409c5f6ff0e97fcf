"""Normalisation statistics in LeRobot's ``meta/stats.json`` layout.

``{feature: {"min": [...], "max": [...], "mean": [...], "std": [...], "count": [N],
"q01": [...], "q10": [...], "q50": [...], "q90": [...], "q99": [...]}}``

Vector features (state, action) have per-dimension lists of length D. Images have
per-channel stats of shape (3, 1, 1) on the [0, 1] scale (LeRobot's convention, so that they
broadcast over a (3, H, W) image). Per-episode stats are stored in the episodes table and
aggregated: mean/std/min/max/count exactly, quantiles as the count-weighted mean of the
per-episode quantiles (LeRobot does the same; exact quantiles would need every frame).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

QUANTILES = {"q01": 0.01, "q10": 0.10, "q50": 0.50, "q90": 0.90, "q99": 0.99}
STAT_NAMES = ("min", "max", "mean", "std", "count", *QUANTILES)

Stats = dict[str, np.ndarray]

# Image stats sample at most this many frames per episode, and every 4th pixel: the
# per-channel mean of 128² frames is stable long before all pixels are seen.
IMAGE_SAMPLE_FRAMES = 24
IMAGE_PIXEL_STRIDE = 4


def vector_stats(values: np.ndarray) -> Stats:
    """Stats of a (T, D) or (T,) array, reduced over time."""
    x = np.asarray(values, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or len(x) == 0:
        raise ValueError(f"expected a non-empty (T, D) array, got shape {np.shape(values)}")
    q = np.quantile(x, list(QUANTILES.values()), axis=0)  # (5, D)
    stats: Stats = {
        "min": x.min(axis=0),
        "max": x.max(axis=0),
        "mean": x.mean(axis=0),
        "std": x.std(axis=0),
        "count": np.array([len(x)], dtype=np.int64),
    }
    stats.update({name: q[i] for i, name in enumerate(QUANTILES)})
    return stats


def image_stats(frames: np.ndarray) -> Stats:
    """Per-channel stats of (T, H, W, 3) uint8 frames on the [0, 1] scale, shaped (3, 1, 1)."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"expected (T, H, W, 3) frames, got shape {frames.shape}")
    step = max(1, len(frames) // IMAGE_SAMPLE_FRAMES)
    s = IMAGE_PIXEL_STRIDE
    sample = frames[::step, ::s, ::s].reshape(-1, 3).astype(np.float64) / 255.0  # (N, 3)
    stats = vector_stats(sample)
    stats = {k: (v if k == "count" else v.reshape(3, 1, 1)) for k, v in stats.items()}
    stats["count"] = np.array([len(frames)], dtype=np.int64)  # frames, as LeRobot counts
    return stats


class StatsAccumulator:
    """Running aggregate of per-episode stats, so adding an episode costs O(1), not O(E).

    Keeps per feature: frame count, sums of ``n·mean`` and ``n·(std² + mean²)`` (exact mean and
    std), elementwise min/max, and ``n·q`` for each quantile (count-weighted mean).
    """

    def __init__(self) -> None:
        self._acc: dict[str, dict[str, Any]] = {}
        self._features: list[str] | None = None

    def add(self, stats: dict[str, Stats]) -> None:
        # Features every part has stats for (a v2.1 dataset may lack image stats, for example).
        if self._features is None:
            self._features = list(stats)
        self._features = [f for f in self._features if f in stats]
        for feat in self._features:
            s = stats[feat]
            n = float(s["count"][0])
            mean = np.asarray(s["mean"], dtype=np.float64)
            std = np.asarray(s["std"], dtype=np.float64)
            a = self._acc.get(feat)
            if a is None:
                a = self._acc[feat] = {
                    "n": 0.0,
                    "sum": np.zeros_like(mean),
                    "sumsq": np.zeros_like(mean),
                    "min": np.asarray(s["min"], dtype=np.float64),
                    "max": np.asarray(s["max"], dtype=np.float64),
                    **{q: np.zeros_like(mean) for q in QUANTILES},
                }
            a["n"] += n
            a["sum"] = a["sum"] + n * mean
            a["sumsq"] = a["sumsq"] + n * (std**2 + mean**2)
            a["min"] = np.minimum(a["min"], s["min"])
            a["max"] = np.maximum(a["max"], s["max"])
            for q in QUANTILES:
                a[q] = a[q] + n * np.asarray(s[q], dtype=np.float64)

    def result(self) -> dict[str, Stats]:
        if not self._features:
            raise ValueError("no episode stats to aggregate")
        out: dict[str, Stats] = {}
        for feat in self._features:
            a = self._acc[feat]
            n = a["n"]
            mean = a["sum"] / n
            out[feat] = {
                "min": a["min"],
                "max": a["max"],
                "mean": mean,
                "std": np.sqrt(np.maximum(a["sumsq"] / n - mean**2, 0.0)),
                "count": np.array([round(n)], dtype=np.int64),
                **{q: a[q] / n for q in QUANTILES},
            }
        return out


def aggregate_stats(per_episode: Sequence[dict[str, Stats]]) -> dict[str, Stats]:
    """Combine per-episode stats into dataset stats (see the module docstring)."""
    acc = StatsAccumulator()
    for stats in per_episode:
        acc.add(stats)
    return acc.result()


def stats_to_json(stats: dict[str, Stats]) -> dict[str, dict[str, Any]]:
    return {f: {k: np.asarray(v).tolist() for k, v in s.items()} for f, s in stats.items()}


def stats_from_json(doc: dict[str, dict[str, Any]]) -> dict[str, Stats]:
    return {
        f: {k: np.asarray(v, dtype=np.int64 if k == "count" else np.float64) for k, v in s.items()}
        for f, s in doc.items()
    }


def flatten_episode_stats(stats: dict[str, Stats]) -> dict[str, list]:
    """Per-episode stats as LeRobot's episodes-table columns ``stats/<feature>/<stat>``."""
    return {
        f"stats/{feat}/{name}": np.asarray(v).tolist()
        for feat, s in stats.items()
        for name, v in s.items()
    }


def unflatten_episode_stats(row: dict[str, Any]) -> dict[str, Stats]:
    """Inverse of :func:`flatten_episode_stats` for one episodes-table row."""
    out: dict[str, Stats] = {}
    for col, value in row.items():
        if not col.startswith("stats/"):
            continue
        feat, _, name = col[len("stats/") :].rpartition("/")
        out.setdefault(feat, {})[name] = _nested_array(value, name)
    return out


def _nested_array(value: Any, name: str) -> np.ndarray:
    # Parquet gives nested lists back as arrays of arrays; np.stack restores the shape.
    def rebuild(v: Any) -> Any:
        if isinstance(v, (list, tuple, np.ndarray)) and len(v) and not np.isscalar(v[0]):
            return np.stack([rebuild(x) for x in v])
        return np.asarray(v)

    return rebuild(value).astype(np.int64 if name == "count" else np.float64)
