"""Real-time chunking (``--mode rtc``; Black, Galliker, Levine 2025).

The async executor (:class:`~embodied_mm.runtime.chunking.AsyncExecutor`) keeps the control
rate while the next chunk is computed, but where the new chunk takes over it cross-fades two
plans that may disagree. Here each request carries what the robot is committed to instead:
the actions still queued when it is made (the old plan for the new chunk's first L steps),
of which the first ``d`` execute while the new chunk is computed. The policy continues them
(``predict_chunk(obs, prefix=..., delay=d)``: exactly for a chunk head trained with
``--rtc-max-delay``, by guided inpainting for a flow head), and the chunk that comes back
simply replaces the queue from the step it arrives: no cross-fade.

``d`` is the :class:`~embodied_mm.runtime.delay.DelayEstimator`'s estimate from measured
request times (wall time, the network included), clamped to ``[1, min(refill_at, the policy's
rtc_max_delay)]``; each chunk's ``d`` and the steps it actually took to arrive are kept per
episode (:attr:`RTCExecutor.delays`, :attr:`RTCExecutor.arrivals`) and logged at debug level.

Two executors, as for ``async``: :class:`RTCExecutor` (a worker thread, wall clock, a robot)
and :class:`SimulatedRTCExecutor` (a chunk asked for at step t arrives at t +
``latency_steps``, deterministic; eval and rollout), whose estimator knows the simulated
latency from the start.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from typing import Any

import numpy as np

from embodied_mm.errors import UsageError
from embodied_mm.runtime.chunking import AsyncExecutor, ChunkExecutor
from embodied_mm.runtime.delay import DelayEstimator
from embodied_mm.runtime.inference import RTC_DELAY, RTC_PREFIX, ChunkResult, ChunkSource

log = logging.getLogger(__name__)


def policy_rtc_max_delay(source: ChunkSource) -> int:
    """The largest committed delay ``source``'s policy continues; a one-line error when it
    cannot continue any (a chunk head trained without ``--rtc-max-delay``)."""
    limit = int(getattr(source, "rtc_max_delay", 0) or 0)
    if limit < 1:
        raise UsageError(
            "--mode rtc needs a policy that continues a committed prefix: train the chunk head "
            "with --rtc-max-delay D (or use a flow head); this one cannot (a chunk head trained "
            "without it, a discrete head, or an ONNX export, which has no prefix input)"
        )
    return limit


def rtc_frame(frame: dict[str, Any], queued: list[np.ndarray], delay: int) -> dict[str, Any]:
    """``frame`` as an RTC request: the ``queued`` actions (the old plan from this step on)
    as the committed prefix, the first ``delay`` of them frozen."""
    if not queued:
        return frame
    out = dict(frame)
    out[RTC_PREFIX] = np.stack(queued).astype(np.float32)  # (L, D)
    out[RTC_DELAY] = int(min(delay, len(queued)))
    return out


def replace_queue(start: int, actions: np.ndarray, now: int) -> deque[tuple[int, np.ndarray]]:
    """The queue after a chunk computed from the observation of step ``start`` arrives at
    step ``now``: its own actions from ``now`` on (action i is for step start + i), nothing
    of the old plan (the chunk already continues it)."""
    return deque((start + i, a) for i, a in enumerate(actions) if start + i >= now)


class _DelayLog:
    """Per-episode record of each RTC request's ``d`` and its measured arrival (steps)."""

    def __init__(self) -> None:
        self.delays: list[int] = []  # d of each request that carried a prefix
        self.arrivals: list[int] = []  # steps from request to arrival, each chunk merged

    def clear(self) -> None:
        self.delays.clear()
        self.arrivals.clear()


class _DelayLogged:
    """What both RTC executors show of their :class:`_DelayLog` (the cadence report reads it)."""

    rtc_log: _DelayLog

    @property
    def delays(self) -> list[int]:
        return self.rtc_log.delays

    @property
    def arrivals(self) -> list[int]:
        return self.rtc_log.arrivals


class RTCExecutor(_DelayLogged, AsyncExecutor):
    """:class:`AsyncExecutor` with committed prefixes and no cross-fade (module docstring).

    ``hz``: the control rate, to turn measured request times into steps. ``estimator``: a
    custom :class:`DelayEstimator` (default: p90 of the last 30 requests)."""

    def __init__(
        self,
        source: ChunkSource,
        hz: float,
        refill_at: int = 4,
        first_chunk_timeout_s: float | None = 10.0,
        estimator: DelayEstimator | None = None,
    ) -> None:
        max_delay = min(max(refill_at, 1), policy_rtc_max_delay(source))
        self.estimator = estimator or DelayEstimator(hz, max_steps=max_delay)
        self.rtc_log = _DelayLog()
        self._timed = _TimedSource(source)
        super().__init__(self._timed, refill_at, first_chunk_timeout_s)

    def _reset_episode_state(self) -> None:
        super()._reset_episode_state()
        self.rtc_log.clear()

    def _post(self, frame: dict[str, Any]) -> None:  # the lock is held
        queued = [a for s, a in self._queue if s >= self.step]
        d = self.estimator.steps()
        if queued:
            self.rtc_log.delays.append(min(d, len(queued)))
            log.debug("rtc request at step %d: d=%d of %d queued", self.step, d, len(queued))
        super()._post(rtc_frame(frame, queued, d))

    def _merge(self, start: int, actions: np.ndarray) -> None:  # the lock is held
        seconds = self._timed.last_s
        if seconds is not None:
            self.estimator.observe(seconds)
        self.rtc_log.arrivals.append(self.step - start)
        self.chunk_step = start  # the observation the played chunk was computed from
        self._queue = replace_queue(start, actions, self.step)


class _TimedSource:
    """A source whose last ``infer`` wall time is kept (read under the executor's lock after
    the worker published the answer, so no lock of its own)."""

    def __init__(self, source: ChunkSource) -> None:
        self.source = source
        self.last_s: float | None = None

    def infer(self, frame: dict[str, Any]) -> ChunkResult:
        t0 = time.perf_counter()
        self.last_s = None
        result = self.source.infer(frame)
        self.last_s = time.perf_counter() - t0
        return result

    def reset(self) -> None:
        self.source.reset()


class SimulatedRTCExecutor(_DelayLogged, ChunkExecutor):
    """:class:`RTCExecutor`'s schedule in simulated time: a chunk requested from the
    observation of step t (when ``refill_at`` or fewer actions are queued) is inferred at
    once but reaches the queue at step t + ``latency_steps``, replacing it. The estimator is
    told the simulated latency (``latency_steps`` periods) from the start, so ``d`` is
    ``latency_steps`` (clamped) and runs are deterministic."""

    def __init__(self, source: ChunkSource, refill_at: int = 4, latency_steps: int = 1) -> None:
        super().__init__(source)
        if latency_steps < 0:
            raise ValueError(f"latency_steps must be >= 0, got {latency_steps}")
        if refill_at < 0:
            raise ValueError(f"refill_at must be >= 0, got {refill_at}")
        max_delay = min(max(refill_at, 1), policy_rtc_max_delay(source))
        self.refill_at = refill_at
        self.latency_steps = latency_steps
        # latency 0: the chunk is played from the step it was asked at, nothing is frozen
        self.estimator = DelayEstimator(
            1.0, max_steps=max_delay, min_steps=min(1, latency_steps), initial_steps=latency_steps
        )
        self.rtc_log = _DelayLog()
        self._queue: deque[tuple[int, np.ndarray]] = deque()  # (step, (D,))
        self._pending: tuple[int, ChunkResult] | None = None  # (step asked at, answer)

    def reset(self) -> None:
        super().reset()
        self._queue.clear()
        self._pending = None
        self.rtc_log.clear()

    def _next(self, frame: dict[str, Any]) -> np.ndarray | None:
        if self.step == 0 and not self._queue:
            result = self._infer(frame)  # the episode's first chunk: waited for
            if result is not None:
                self.chunk_step = 0
                self._queue = replace_queue(0, result.actions, 0)
        self._arrive()
        if len(self._queue) <= self.refill_at and self._pending is None:
            queued = [a for _, a in self._queue]
            d = self.estimator.steps()
            if queued:
                self.rtc_log.delays.append(min(d, len(queued)))
            result = self._infer(rtc_frame(frame, queued, d))
            if result is not None:
                self._pending = (self.step, result)
                self._arrive()  # latency 0: played from the step it was asked at
        if self._queue and self._queue[0][0] == self.step:
            return self._queue.popleft()[1]
        return None

    def _arrive(self) -> None:
        """Replace the queue with the pending chunk if it is due; drop the steps passed."""
        if self._pending is not None and self._pending[0] + self.latency_steps <= self.step:
            start, result = self._pending
            self._pending = None
            self.rtc_log.arrivals.append(self.step - start)
            self.chunk_step = start
            self._queue = replace_queue(start, result.actions, self.step)
        while self._queue and self._queue[0][0] < self.step:
            self._queue.popleft()
