"""Warming the policy up before the first control step.

A policy's first inference is slow (lazy kernel and thread-pool set-up, the instruction's
first tokenisation, a server's own cold start): 0.5 to 2.5 s, against a 50 ms control period.
Taken at the first step it would hold the robot on a stale observation and count as a
deadline miss. :func:`warm_up` runs one inference on the robot's present observation before
the control loop starts, so the loop's step statistics never include it; the chunk is thrown
away and the source reset, so the first episode starts as any other.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from embodied_mm.features import TASK
from embodied_mm.runtime.inference import ChunkSource, PolicyUnavailable
from embodied_mm.runtime.robot import Robot


def warm_up(
    source: ChunkSource,
    robot: Robot,
    task: str | None = None,
    say: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """One inference of ``source`` on ``robot``'s observation (with ``task``, else the
    robot's own instruction), then ``source.reset()``; ``say`` gets a line before and after.

    Returns ``{"ms": wall time of the inference, "error": None}``, or with ``error`` the
    message of a :class:`PolicyUnavailable` (a server that does not answer yet: the loop's
    watchdog deals with it as with any outage). Other errors propagate before the robot has
    moved.
    """
    say = say or (lambda message: None)
    say("warming up the policy…")
    frame = dict(robot.get_observation().frame)
    frame[TASK] = task if task is not None else (robot.task or "")
    t0 = time.perf_counter()
    error = None
    try:
        source.infer(frame)
    except PolicyUnavailable as e:
        error = str(e)
    ms = (time.perf_counter() - t0) * 1e3
    source.reset()
    if error is None:
        say(f"policy ready (warm-up inference {ms:.0f} ms, not counted in the step statistics)")
    else:
        say(f"policy warm-up failed ({error}); starting anyway: the robot holds until it answers")
    return {"ms": round(ms, 3), "error": error}
