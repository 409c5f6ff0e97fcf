"""Per-stage latency statistics and deadline accounting for the controller loop."""

from __future__ import annotations

import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np

STAGES = ("observe", "preprocess", "infer", "postprocess", "act")


class StageTimer:
    """Keeps the last ``window`` durations of each named stage and of whole steps (seconds),
    as ``clock`` (seconds) measures them."""

    def __init__(
        self,
        period_s: float,
        window: int = 10_000,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.period_s = period_s
        self.clock = clock
        self.samples: dict[str, deque[float]] = defaultdict(lambda: deque(maxlen=window))
        self.deadline_misses = 0
        self.steps = 0

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        t0 = self.clock()
        try:
            yield
        finally:
            self.samples[name].append(self.clock() - t0)

    def add(self, name: str, seconds: float) -> None:
        self.samples[name].append(seconds)

    def end_step(self, step_seconds: float) -> bool:
        """Record one step's busy time; returns True when it overran the control period."""
        self.steps += 1
        self.samples["step"].append(step_seconds)
        missed = step_seconds > self.period_s
        self.deadline_misses += missed
        return missed

    def percentiles_ms(self, name: str) -> tuple[float, float]:
        """(p50, p99) in milliseconds; NaN when the stage never ran."""
        data = self.samples.get(name)
        if not data:
            return float("nan"), float("nan")
        p50, p99 = np.percentile(np.fromiter(data, dtype=np.float64), [50, 99]) * 1e3
        return float(p50), float(p99)

    def summary(self) -> dict[str, float | int]:
        out: dict[str, float | int] = {"steps": self.steps, "deadline_misses": self.deadline_misses}
        for name in (*STAGES, "step"):
            p50, p99 = self.percentiles_ms(name)
            out[f"{name}_p50_ms"] = round(p50, 3)
            out[f"{name}_p99_ms"] = round(p99, 3)
        return out
