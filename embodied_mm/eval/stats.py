"""Binomial confidence intervals for success rates."""

from __future__ import annotations

import math


def wilson_interval(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """The Wilson score interval (95% by default) of a success rate.

    Unlike the normal approximation it stays inside [0, 1] and is sensible at 0/n and n/n,
    the usual case for small robot evaluations.
    """
    if n <= 0:
        raise ValueError(f"need at least one episode, got n={n}")
    if not 0 <= successes <= n:
        raise ValueError(f"successes={successes} is outside [0, {n}]")
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)
