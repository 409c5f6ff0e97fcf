"""Online estimate of the inference delay ``d`` of real-time chunking, in control steps.

Real-time chunking (Black, Galliker, Levine 2025) freezes the first ``d`` actions of the next
chunk to what the robot executes while that chunk is being computed, so ``d`` must cover the
inference time: too small and the robot runs past the frozen prefix before the chunk arrives,
too large and the policy reacts later than it could. :class:`DelayEstimator` keeps the last
``window`` measured request times (wall time, request to answer, network included) and turns
a high percentile of them into steps: ``ceil(p / period)``. A percentile rather than the last
sample, so one slow request (a GC pause, a dropped packet) does not move ``d``, while a
sustained change (a loaded GPU) moves it once it fills ``1 - percentile`` of the window.

The result is clamped to ``[min_steps, max_steps]``: at least 1, because the step that asks
for a chunk already plays its action from the old plan, and at most ``chunk_size -
execution_horizon``, the actions of the old plan still queued when the request is made.
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np


class DelayEstimator:
    """``percentile`` (0..100) of the last ``window`` inference times, as control steps.

    Before any measurement the estimate is ``initial_steps`` (default ``max_steps``: the safe
    side, the robot never outruns a frozen prefix it was promised)."""

    def __init__(
        self,
        hz: float,
        max_steps: int,
        min_steps: int = 1,
        percentile: float = 90.0,
        window: int = 30,
        initial_steps: int | None = None,
    ) -> None:
        if hz <= 0:
            raise ValueError(f"hz must be positive, got {hz}")
        if not 0 <= min_steps <= max_steps:
            raise ValueError(f"need 0 <= min_steps <= max_steps, got {min_steps}, {max_steps}")
        if not 0 < percentile <= 100:
            raise ValueError(f"percentile must be in (0, 100], got {percentile}")
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        self.period = 1.0 / hz
        self.min_steps = min_steps
        self.max_steps = max_steps
        self.percentile = percentile
        self.initial_steps = max_steps if initial_steps is None else initial_steps
        self._times: deque[float] = deque(maxlen=window)

    def observe(self, seconds: float) -> None:
        """Record one request's measured time (request sent to answer received)."""
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError(f"an inference time must be a finite duration >= 0, got {seconds}")
        self._times.append(float(seconds))

    @property
    def samples(self) -> int:
        return len(self._times)

    def delay_s(self) -> float | None:
        """The percentile of the window in seconds; None before the first measurement."""
        if not self._times:
            return None
        return float(np.percentile(np.fromiter(self._times, dtype=np.float64), self.percentile))

    def steps(self) -> int:
        """The delay ``d`` in control steps, clamped to ``[min_steps, max_steps]``."""
        seconds = self.delay_s()
        if seconds is None:
            return max(self.min_steps, min(self.max_steps, self.initial_steps))
        # a tiny epsilon: 0.1 s at 10 Hz is exactly 1 step, not 2 after float rounding
        raw = math.ceil(seconds / self.period - 1e-9)
        return max(self.min_steps, min(self.max_steps, raw))

    def reset(self) -> None:
        """Forget the measurements (a different policy or link); an episode boundary keeps
        them, the policy's speed does not change with the episode."""
        self._times.clear()
