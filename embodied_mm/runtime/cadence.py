"""An episode's cadence: did the loop keep its rate, where the time went, what delay RTC used.

:func:`cadence_report` reads what the loop already measures (:class:`~embodied_mm.runtime.
timing.StageTimer`: per-stage durations and steps over the control period) and, under
``--mode rtc``, the executor's per-chunk delays, into the ``cadence`` entry of a deploy
episode's ``summary.json``:

- ``achieved_hz`` and ``target_hz``; ``cycles`` and ``over_budget`` (steps whose busy time
  exceeded the period);
- ``stage_ms``: p50/p99/mean ms of ``observe`` (robot read), ``infer`` (the executor's wait
  for an action, near zero when inference overlaps execution), ``filter`` (the safety
  filter) and ``send`` (the command out);
- ``delay`` (rtc only): the delay ``d`` of each prefixed request as a histogram {steps:
  count} and in order (``d_per_request``), its p50 and max, the steps each chunk actually took
  to arrive (histogram and in order), and the estimator's current value in ms.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from embodied_mm.runtime.timing import StageTimer

# the cadence stage names and the loop stage each one is
STAGE_NAMES = {"observe": "observe", "infer": "infer", "filter": "postprocess", "send": "act"}


def _stats_ms(samples: Any) -> dict[str, float] | None:
    if not samples:
        return None
    ms = np.fromiter(samples, dtype=np.float64) * 1e3
    p50, p99 = np.percentile(ms, [50, 99])
    return {"p50": round(float(p50), 3), "p99": round(float(p99), 3),
            "mean": round(float(ms.mean()), 3)}  # fmt: skip


def _histogram(values: list[int]) -> dict[str, int]:
    return {str(k): v for k, v in sorted(Counter(values).items())}


def delay_report(executor: Any) -> dict[str, Any] | None:
    """The RTC delay figures of ``executor`` (None when it is not an RTC executor)."""
    delays = getattr(executor, "delays", None)
    if delays is None:
        return None
    arrivals = list(getattr(executor, "arrivals", []))
    estimator = executor.estimator
    estimate_s = estimator.delay_s()
    return {
        "requests": len(delays),
        "d_steps": _histogram(list(delays)),
        "d_p50": float(np.median(delays)) if delays else None,
        "d_max": int(max(delays)) if delays else None,
        "arrival_steps": _histogram(arrivals),
        "d_per_request": [int(d) for d in delays],  # in order, each chunk's d
        "arrival_per_chunk": [int(a) for a in arrivals],
        "estimate_steps": estimator.steps(),
        "estimate_ms": None if estimate_s is None else round(estimate_s * 1e3, 3),
    }


def cadence_report(timer: StageTimer, achieved_hz: float, executor: Any = None) -> dict[str, Any]:
    """The ``cadence`` entry of an episode (see the module docstring)."""
    return {
        "achieved_hz": round(float(achieved_hz), 3),
        "target_hz": round(1.0 / timer.period_s, 3),
        "cycles": timer.steps,
        "over_budget": timer.deadline_misses,
        "stage_ms": {
            name: _stats_ms(timer.samples.get(stage)) for name, stage in STAGE_NAMES.items()
        },
        "delay": delay_report(executor),
    }


def delay_status(executor: Any) -> str:
    """`` | d 2 (p90 93 ms)``: the RTC delay for the status line; "" for other modes."""
    estimator = getattr(executor, "estimator", None)
    if estimator is None:
        return ""
    seconds = estimator.delay_s()
    measured = (
        "unmeasured" if seconds is None else f"p{estimator.percentile:g} {seconds * 1e3:.0f} ms"
    )
    return f" | d {estimator.steps()} ({measured})"
