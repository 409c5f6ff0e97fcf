"""The range of ``observation.state`` values the policy server accepts, from the policy's stats.

A state far outside anything the policy was trained on is a sensor or client fault, not an
observation: ``1e300`` passes ``isfinite`` as float64, becomes ``inf`` as the model's float32,
and the chunk computed from it is garbage or non-finite. The server therefore rejects a state
outside the training data's range widened by a generous margin:

    low  = min − w,   high = max + w,   w = max(max − min, MIN_MARGIN)     (per dimension)

i.e. the data's own span again on each side, and at least ``MIN_MARGIN`` units even for a
dimension that never moved in the data. ``min``/``max`` come from the policy's normalisation
stats (``stats.json``, feature ``observation.state``); without them ``q01``/``q99`` are used,
then ``mean ± 3·std``. A policy without state stats gets no range, only the float32 bound; so
does one whose state stats are the placeholder :func:`~embodied_mm.model.normalize.unit_stats`
of a policy built without a dataset (they say nothing about the robot's state).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from embodied_mm.features import OBS_STATE
from embodied_mm.model.normalize import unit_stats

MIN_MARGIN = 1.0
FLOAT32_MAX = float(np.finfo(np.float32).max)


def state_range_from_stats(
    stats: Mapping[str, Any] | None, state_dim: int
) -> tuple[np.ndarray, np.ndarray] | None:
    """``(low, high)``, each (S,) float64, for the ``observation.state`` entry of a stats
    dict, or None when the stats say nothing usable about the state."""
    feature = (stats or {}).get(OBS_STATE)
    if not isinstance(feature, Mapping) or dict(feature) == unit_stats(state_dim):
        return None

    def vector(name: str) -> np.ndarray | None:
        values = feature.get(name)
        if values is None:
            return None
        arr = np.asarray(values, dtype=np.float64).reshape(-1)
        if arr.shape != (state_dim,) or not np.isfinite(arr).all():
            raise ValueError(
                f"state stats {OBS_STATE}.{name} must be {state_dim} finite numbers, "
                f"got shape {arr.shape}"
            )
        return arr

    lo, hi = vector("min"), vector("max")
    if lo is None or hi is None:
        lo, hi = vector("q01"), vector("q99")
    if lo is None or hi is None:
        mean, std = vector("mean"), vector("std")
        if mean is None or std is None:
            return None
        lo, hi = mean - 3 * np.abs(std), mean + 3 * np.abs(std)
    lo, hi = np.minimum(lo, hi), np.maximum(lo, hi)
    margin = np.maximum(hi - lo, MIN_MARGIN)
    # never wider than what float32 (the model's dtype) can hold
    return np.maximum(lo - margin, -FLOAT32_MAX), np.minimum(hi + margin, FLOAT32_MAX)


def policy_state_stats(policy: Any) -> Mapping[str, Any] | None:
    """The normalisation stats behind a served policy: a PyTorch policy's ``normalizer.stats``
    or an exported one's ``manifest.stats``, also through a wrapper's ``.policy`` (such as
    :class:`~embodied_mm.runtime.inference.LocalPolicy`); None when it has neither."""
    for obj in (policy, getattr(policy, "policy", None)):
        if obj is None:
            continue
        normalizer = getattr(obj, "normalizer", None)
        if normalizer is not None and isinstance(getattr(normalizer, "stats", None), Mapping):
            return normalizer.stats
        manifest = getattr(obj, "manifest", None)
        if manifest is not None and isinstance(getattr(manifest, "stats", None), Mapping):
            return manifest.stats
    return None
