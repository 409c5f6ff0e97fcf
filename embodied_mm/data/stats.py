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


def aggregate_stats(per_episode: Sequence[dict[str, Stats]]) -> dict[str, Stats]:
    """Combine per-episode stats into dataset stats (see the module docstring)."""
    if not per_episode:
        raise ValueError("no episode stats to aggregate")
    # Features every part has stats for (a v2.1 dataset may lack image stats, for example).
    features = [f for f in per_episode[0] if all(f in ep for ep in per_episode)]
    out: dict[str, Stats] = {}
    for feat in features:
        parts = [ep[feat] for ep in per_episode]
        n = np.array([float(p["count"][0]) for p in parts])  # (E,)
        w = n / n.sum()
        shape = (-1,) + (1,) * (np.asarray(parts[0]["mean"]).ndim)
        wb = w.reshape(shape)
        means = np.stack([p["mean"] for p in parts])  # (E, *S)
        stds = np.stack([p["std"] for p in parts])
        mean = (wb * means).sum(axis=0)
        var = (wb * (stds**2 + (means - mean) ** 2)).sum(axis=0)
        agg: Stats = {
            "min": np.min(np.stack([p["min"] for p in parts]), axis=0),
            "max": np.max(np.stack([p["max"] for p in parts]), axis=0),
            "mean": mean,
            "std": np.sqrt(var),
            "count": np.array([int(n.sum())], dtype=np.int64),
        }
        for q in QUANTILES:
            agg[q] = (wb * np.stack([p[q] for p in parts])).sum(axis=0)
        out[feat] = agg
    return out


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
