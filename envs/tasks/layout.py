"""Reset-distribution helpers: named colours, non-overlapping placements, yaw folding."""

from __future__ import annotations

import numpy as np

# Colours that read clearly against the table and each other at 128², with the words the
# instructions use for them.
PALETTE: dict[str, tuple[float, float, float]] = {
    "red": (0.85, 0.12, 0.1),
    "green": (0.15, 0.7, 0.2),
    "blue": (0.12, 0.3, 0.9),
    "yellow": (0.95, 0.85, 0.1),
    "purple": (0.55, 0.2, 0.75),
    "orange": (1.0, 0.5, 0.05),
    "cyan": (0.1, 0.8, 0.85),
    "pink": (1.0, 0.45, 0.7),
}

# Where objects may stand: reachable with the TCP pointing down and in both cameras' view.
WORKSPACE_X = (0.38, 0.64)
WORKSPACE_Y = (-0.24, 0.24)


def pick_colors(rng: np.random.Generator, n: int, exclude: set[str] | None = None) -> list[str]:
    """``n`` distinct colour names not in ``exclude``."""
    names = [c for c in PALETTE if c not in (exclude or set())]
    if n > len(names):
        raise ValueError(f"asked for {n} colours, only {len(names)} left after {exclude}")
    return [names[i] for i in rng.choice(len(names), size=n, replace=False)]


def color_rgba(
    name: str, rng: np.random.Generator, jitter: bool
) -> tuple[float, float, float, float]:
    """The palette colour, shaded by up to ±0.07 per channel when ``jitter`` (domain
    randomisation) is on; the hue stays recognisable so the instruction stays true."""
    rgb = np.array(PALETTE[name])
    if jitter:
        rgb = np.clip(rgb + rng.uniform(-0.07, 0.07, size=3), 0.0, 1.0)
    return (float(rgb[0]), float(rgb[1]), float(rgb[2]), 1.0)


def sample_xys(
    rng: np.random.Generator,
    radii: list[float],
    fixed: list[tuple[np.ndarray, float]] | None = None,
    x_range: tuple[float, float] = WORKSPACE_X,
    y_range: tuple[float, float] = WORKSPACE_Y,
    gap: float = 0.03,
    max_tries: int = 2000,
) -> list[np.ndarray]:
    """Positions (2,) for discs of the given footprint ``radii`` that keep ``gap`` metres apart
    from each other and from the ``fixed`` (xy, radius) discs, by rejection sampling."""
    placed: list[tuple[np.ndarray, float]] = list(fixed or [])
    out: list[np.ndarray] = []
    for r in radii:
        if x_range[0] + r > x_range[1] - r:
            raise ValueError(f"an object of radius {r} does not fit in x range {x_range}")
        for _ in range(max_tries):
            xy = np.array(
                [rng.uniform(x_range[0] + r, x_range[1] - r), rng.uniform(y_range[0], y_range[1])]
            )
            if all(np.linalg.norm(xy - p) >= r + pr + gap for p, pr in placed):
                break
        else:
            raise RuntimeError(f"could not place an object of radius {r} after {max_tries} tries")
        placed.append((xy, r))
        out.append(xy)
    return out


def quat_yaw(quat: np.ndarray) -> float:
    """Yaw about world z of a (w, x, y, z) orientation (its x axis projected on the table)."""
    w, x, y, z = quat
    return float(np.arctan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z)))


def wrap_quarter_turn(yaw: float) -> float:
    """A cube looks the same every quarter turn: fold its yaw into [-pi/4, pi/4)."""
    return float((yaw + np.pi / 4) % (np.pi / 2) - np.pi / 4)
