"""Per-feature normalisation: applied to inputs on the way in, reversed on actions on the way out.

Statistics follow LeRobot's ``stats.json`` layout::

    {"observation.state": {"mean": [...], "std": [...], "min": [...], "max": [...],
                           "q01": [...], "q99": [...]},
     "action": {...}}

Modes per feature:

- ``identity``: unchanged.
- ``mean_std``: ``(x - mean) / std`` (state: keeps outliers visible to the model). ``std`` is
  clamped from below to ``std_floor_rel`` (default ``STD_FLOOR_REL``) of the feature's widest
  per-dimension range (``max - min``): a dimension that barely moves in the data (a quaternion
  component of the shipped checkpoint has std 0.0013 where the joints span 2.6 rad) would
  otherwise turn a millimetre-scale shift on another robot or engine into tens of standard
  deviations. The floor is part of what a policy was trained with, so it is saved in the
  policy's config (checkpoints from before it existed load with no floor).
- ``min_max`` / ``q01_q99``: maps ``[low, high]`` to ``[-1, 1]`` and clips (actions: the
  discrete head bins ``[-1, 1]`` and the clipping keeps every decoded action inside the bounds).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

NORM_MODES = ("identity", "mean_std", "min_max", "q01_q99")
_EPS = 1e-6
# Floor of a mean_std feature's std, as a fraction of its widest dimension's range: a shift of
# 1% of that range is at most one standard deviation in any dimension.
STD_FLOOR_REL = 0.01

Stats = dict[str, dict[str, list[float]]]


def unit_stats(dim: int) -> dict[str, list[float]]:
    """Stats that make every mode an identity on ``[-1, 1]``; used when no dataset stats exist."""
    return {
        "mean": [0.0] * dim,
        "std": [1.0] * dim,
        "min": [-1.0] * dim,
        "max": [1.0] * dim,
        "q01": [-1.0] * dim,
        "q99": [1.0] * dim,
    }


def load_stats(path: str | Path) -> Stats:
    """Read a LeRobot-style ``stats.json``; a malformed file fails with its path in the message."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"cannot read normalisation stats {path}: {err}") from err
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise ValueError(f"normalisation stats {path} must map feature -> {{stat: [values]}}")
    return data


def std_floor(feature_stats: dict[str, list[float]], rel: float = STD_FLOOR_REL) -> float:
    """Lowest std a ``mean_std`` feature is divided by: ``rel`` × its widest range.

    Falls back to a tiny epsilon when the stats hold no ``min``/``max`` (or every dimension is
    constant), so that a division by zero is still impossible.
    """
    low, high = feature_stats.get("min"), feature_stats.get("max")
    if not low or not high:
        return _EPS
    widest = max(float(h) - float(lo) for lo, h in zip(low, high, strict=True))
    return max(rel * widest, _EPS)


class Normalizer(nn.Module):
    """Normalises features by the stats and mode chosen for each; reversible for actions."""

    def __init__(
        self,
        stats: Stats,
        modes: dict[str, str],
        dims: dict[str, int],
        std_floor_rel: float = STD_FLOOR_REL,
    ) -> None:
        """``std_floor_rel``: see :func:`std_floor` (0 keeps every std as it is)."""
        super().__init__()
        if not 0.0 <= std_floor_rel < 1.0:
            raise ValueError(f"std_floor_rel must be in [0, 1); got {std_floor_rel}")
        self.modes = dict(modes)
        self.stats = {k: {s: [float(x) for x in v] for s, v in d.items()} for k, d in stats.items()}
        self._keys: dict[str, str] = {}  # feature -> buffer name prefix
        for i, (feature, mode) in enumerate(sorted(self.modes.items())):
            if mode not in NORM_MODES:
                raise ValueError(
                    f"unknown normalisation mode {mode!r} for {feature}; known: {NORM_MODES}"
                )
            if mode == "identity":
                continue
            if feature not in self.stats:
                raise ValueError(f"normalisation stats lack feature {feature!r} (mode {mode})")
            needed = {
                "mean_std": ("mean", "std"),
                "min_max": ("min", "max"),
                "q01_q99": ("q01", "q99"),
            }[mode]
            prefix = f"f{i}"
            self._keys[feature] = prefix
            for j, name in enumerate(needed):
                if name not in self.stats[feature]:
                    raise ValueError(
                        f"normalisation stats for {feature!r} lack {name!r} (mode {mode})"
                    )
                values = torch.tensor(self.stats[feature][name], dtype=torch.float32)
                if values.ndim != 1 or values.numel() != dims[feature]:
                    raise ValueError(
                        f"stats {feature}.{name} has shape {tuple(values.shape)}; "
                        f"expected ({dims[feature]},)"
                    )
                if name == "std":
                    values = values.clamp_min(std_floor(self.stats[feature], std_floor_rel))
                # Buffers follow the module across devices; the JSON copy is what gets saved.
                self.register_buffer(f"{prefix}_{j}", values, persistent=False)
            # Each direction as one fused multiply-add, y = scale * x + shift (one op on the
            # control loop's hot path instead of four):
            #   mean_std: y = (x - mean) / std;  bounded: y = 2 (x - low) / (high - low) - 1
            a, b = self._pair(feature)
            if mode == "mean_std":
                scale, shift = 1.0 / b, -a / b
            else:
                width = (b - a).clamp_min(_EPS)
                scale, shift = 2.0 / width, -2.0 * a / width - 1.0
            self.register_buffer(f"{prefix}_scale", scale, persistent=False)
            self.register_buffer(f"{prefix}_shift", shift, persistent=False)
            # the inverse, x = y * inv_scale + inv_shift
            self.register_buffer(f"{prefix}_inv_scale", 1.0 / scale, persistent=False)
            self.register_buffer(f"{prefix}_inv_shift", -shift / scale, persistent=False)

    def _pair(self, feature: str) -> tuple[torch.Tensor, torch.Tensor]:
        prefix = self._keys[feature]
        return getattr(self, f"{prefix}_0"), getattr(self, f"{prefix}_1")

    def _affine(self, feature: str, inverse: bool) -> tuple[torch.Tensor, torch.Tensor]:
        prefix = self._keys[feature] + ("_inv" if inverse else "")
        return getattr(self, f"{prefix}_scale"), getattr(self, f"{prefix}_shift")

    def normalize(self, feature: str, x: torch.Tensor) -> torch.Tensor:
        mode = self.modes.get(feature, "identity")
        if mode == "identity":
            return x
        scale, shift = self._affine(feature, inverse=False)
        y = torch.addcmul(shift, x, scale)
        return y if mode == "mean_std" else y.clamp(-1.0, 1.0)

    def unnormalize(self, feature: str, y: torch.Tensor) -> torch.Tensor:
        mode = self.modes.get(feature, "identity")
        if mode == "identity":
            return y
        scale, shift = self._affine(feature, inverse=True)
        if mode != "mean_std":
            # Clamp first so the result lies inside [low, high] whatever the head produced.
            y = y.clamp(-1.0, 1.0)
        return torch.addcmul(shift, y, scale)

    def bounds(self, feature: str) -> tuple[torch.Tensor, torch.Tensor] | None:
        """``(low, high)`` in robot units for bounded modes, else None."""
        if self.modes.get(feature) in ("min_max", "q01_q99"):
            return self._pair(feature)
        return None

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.stats, indent=1))
