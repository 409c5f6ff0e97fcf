"""Action-chunk execution: how a (K, D) chunk becomes one action per control step.

- :class:`OpenLoopExecutor`: infer, play the first ``n_action_steps`` actions blind, repeat.
- :class:`TemporalEnsembleExecutor` (ACT, Zhao et al. 2023): infer every step; the action for
  step t is the weighted mean of every chunk's prediction for t, weight ``exp(-m * i)`` with
  i = 0 for the oldest prediction, so a new chunk refines rather than jerks the motion.
- :class:`AsyncExecutor`: inference runs on a worker thread. When the queue runs low, the next
  chunk is requested from the current observation while the queue keeps playing; when it
  arrives, the actions whose steps already passed are dropped and the overlap with what is
  still queued is cross-faded from old to new.
- :class:`SimulatedLatencyExecutor`: the async schedule in simulated time: a chunk asked for
  at step t arrives at step t + ``latency_steps`` (deterministic; eval and rollout use it).

Every executor returns None from :meth:`next_action` when it has no fresh action (the policy
failed, or the async queue ran dry); the safety filter's watchdog turns that into a hold.

What an operator watches (:meth:`ChunkExecutor.chunk_stats`, ``deploy``'s status line): the
model's own time per chunk (the source's ``infer_ms``: measured around the forward pass in the
thread that runs it, or reported by the policy server), not the time the control loop waited,
which in async mode is about zero; and the age of the chunk being played, in control steps
since the observation it was computed from.

Episodes (:meth:`ChunkExecutor.reset`): nothing of one episode reaches the next. The first
step of an episode always plays an action of a chunk computed from that step's observation:
every executor infers it there, and the async one waits for it (up to
``first_chunk_timeout_s``) even when a request of the previous episode is still running; that
request's chunk, or its failure, is discarded (a failure is logged). The async executor
calls the source (``infer`` and ``reset``) from its worker thread only, so a reset never runs
while the policy is inside an inference.
"""

from __future__ import annotations

import abc
import logging
import threading
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from embodied_mm.runtime.inference import ChunkResult, ChunkSource, PolicyUnavailable

log = logging.getLogger(__name__)


class ChunkExecutor(abc.ABC):
    """Turns chunks from a :class:`ChunkSource` into one action per step."""

    def __init__(self, source: ChunkSource) -> None:
        self.source = source
        self.step = 0
        self.plan: str | None = None
        self.last_error: str | None = None
        self.last_infer_ms: float | None = None
        self.model_ms: deque[float] = deque(maxlen=10_000)  # each chunk's infer_ms, this episode
        # the step whose observation the chunk being played was computed from (None: no chunk)
        self.chunk_step: int | None = None
        self.chunk_ages: deque[int] = deque(maxlen=10_000)  # per step with a chunk, in steps

    def reset(self) -> None:
        """Start a new episode (also resets the source)."""
        self._reset_episode_state()
        self.source.reset()

    def _reset_episode_state(self) -> None:
        self.step = 0
        self.plan = None
        self.last_error = None  # the previous episode's outage is not this one's
        self.last_infer_ms = None
        self.model_ms.clear()
        self.chunk_step = None
        self.chunk_ages.clear()

    def next_action(self, frame: dict[str, Any]) -> np.ndarray | None:
        """(D,) action for the current step, or None when none is available."""
        try:
            return self._next(frame)
        finally:
            if self.chunk_step is not None:
                self.chunk_ages.append(self.step - self.chunk_step)
            self.step += 1

    @property
    def chunk_age(self) -> int | None:
        """Steps between the observation of the chunk played at the last step and that step."""
        return self.chunk_ages[-1] if self.chunk_ages and self.chunk_step is not None else None

    def chunk_stats(self) -> dict[str, float | int]:
        """This episode's chunks: how many, the model's time per chunk (p50/p99 ms) and the
        age of the chunk played (p50/max steps); NaN where there were none."""
        ms = np.fromiter(self.model_ms, dtype=np.float64)
        ages = np.fromiter(self.chunk_ages, dtype=np.float64)
        p50, p99 = np.percentile(ms, [50, 99]) if len(ms) else (float("nan"),) * 2
        return {
            "chunks": len(ms),
            "model_infer_p50_ms": round(float(p50), 3),
            "model_infer_p99_ms": round(float(p99), 3),
            "chunk_age_p50_steps": float(np.median(ages)) if len(ages) else float("nan"),
            "chunk_age_max_steps": int(ages.max()) if len(ages) else 0,
        }

    @abc.abstractmethod
    def _next(self, frame: dict[str, Any]) -> np.ndarray | None: ...

    def _infer(self, frame: dict[str, Any]) -> ChunkResult | None:
        try:
            result = self.source.infer(frame)
        except PolicyUnavailable as e:
            self.last_error = str(e)
            return None
        self._record(result)
        return result

    def _record(self, result: ChunkResult) -> None:
        self.last_error = None
        self.last_infer_ms = result.infer_ms
        self.model_ms.append(result.infer_ms)
        if result.plan is not None:
            self.plan = result.plan

    def close(self) -> None:  # noqa: B027 (only the async executor owns a thread)
        """Release worker threads."""


class OpenLoopExecutor(ChunkExecutor):
    def __init__(self, source: ChunkSource, n_action_steps: int | None = None) -> None:
        super().__init__(source)
        if n_action_steps is not None and n_action_steps < 1:
            raise ValueError(f"n_action_steps must be >= 1, got {n_action_steps}")
        self.n_action_steps = n_action_steps
        self._queue: deque[np.ndarray] = deque()

    def reset(self) -> None:
        super().reset()
        self._queue.clear()

    def will_infer(self) -> bool:
        """Whether the next step asks the policy for a chunk (the queue is empty)."""
        return not self._queue

    def _next(self, frame: dict[str, Any]) -> np.ndarray | None:
        if not self._queue:
            result = self._infer(frame)
            if result is None:
                return None
            n = self.n_action_steps or len(result.actions)
            self._queue.extend(result.actions[:n])
            self.chunk_step = self.step
        return self._queue.popleft()


class TemporalEnsembleExecutor(ChunkExecutor):
    def __init__(self, source: ChunkSource, coeff: float = 0.01) -> None:
        super().__init__(source)
        self.coeff = coeff
        self._chunks: deque[tuple[int, np.ndarray]] = deque()  # (start step, (K, D))

    def reset(self) -> None:
        super().reset()
        self._chunks.clear()

    def will_infer(self) -> bool:
        """Always: every step asks the policy for a chunk."""
        return True

    def _next(self, frame: dict[str, Any]) -> np.ndarray | None:
        result = self._infer(frame)
        if result is None:
            return None
        t = self.step
        self._chunks.append((t, result.actions))
        self.chunk_step = t  # the newest of the chunks averaged
        while self._chunks and self._chunks[0][0] + len(self._chunks[0][1]) <= t:
            self._chunks.popleft()
        preds = np.stack(
            [chunk[t - start] for start, chunk in self._chunks]
        )  # (N, D), oldest first
        weights = np.exp(-self.coeff * np.arange(len(preds)))  # (N,)
        return (weights[:, None] * preds).sum(0) / weights.sum()


@dataclass
class _Request:
    step: int  # the step whose observation ``frame`` is
    frame: dict[str, Any]


@dataclass
class _Answer:
    step: int  # the step whose observation the chunk was computed from
    result: ChunkResult | None  # None when the source was unavailable
    unavailable: str | None = None  # the PolicyUnavailable message: hold, ask again


class AsyncExecutor(ChunkExecutor):
    """Overlaps inference with execution; the source is only ever called from one worker
    thread, so it needs no locking of its own.

    ``refill_at``: request the next chunk when this many actions (or fewer) are left queued;
    it should cover the policy's latency in steps, so the queue never runs dry.
    ``first_chunk_timeout_s``: how long the first step of an episode waits for the chunk
    computed from its own observation (None: as long as the source takes). The wait covers
    the rest of a request still running from the previous episode, the source's reset and
    one inference; past it the step holds and the chunk is played from the step it arrives.

    Episodes are generations: :meth:`reset` starts a new one, and an answer or failure of an
    older generation's request is discarded (and logged) instead of reaching this episode.
    """

    def __init__(
        self,
        source: ChunkSource,
        refill_at: int = 4,
        first_chunk_timeout_s: float | None = 10.0,
    ) -> None:
        super().__init__(source)
        self.refill_at = refill_at
        self.first_chunk_timeout_s = first_chunk_timeout_s
        self._queue: deque[tuple[int, np.ndarray]] = deque()  # (step, (D,))
        self._lock = threading.Lock()
        self._has_work = threading.Condition(self._lock)  # the worker waits on it
        self._has_answer = threading.Condition(self._lock)  # the first step waits on it
        self._generation = 0
        self._reset_pending = False  # source.reset() is due before the next inference
        self._request: _Request | None = None  # posted, not yet taken by the worker
        self._in_flight = False  # a request of this generation is posted or running
        self._answer: _Answer | None = None  # of this generation, not yet consumed
        self._failure: Exception | None = None  # of this generation, raised by the loop thread
        self._closed = False
        self._worker = threading.Thread(target=self._work, name="async-inference", daemon=True)
        self._worker.start()

    # ---------------------------------------------------------------- worker thread
    def _work(self) -> None:
        while True:
            with self._has_work:
                while not (self._closed or self._reset_pending or self._request is not None):
                    self._has_work.wait()
                if self._closed:
                    return
                # Taken together: a request posted after a reset always finds that reset
                # still pending or already done, so the source is reset before it infers.
                do_reset, self._reset_pending = self._reset_pending, False
                request, self._request = self._request, None
                generation = self._generation
            answer, failure = self._serve(do_reset, request)
            with self._lock:
                if generation != self._generation:  # the episode it was for is over
                    if failure is not None:
                        _log_discarded(failure, "a request of a finished episode failed")
                    continue
                if failure is not None and self._failure is None:
                    self._failure = failure
                if request is not None:
                    self._answer = answer
                    self._in_flight = False
                self._has_answer.notify_all()

    def _serve(
        self, do_reset: bool, request: _Request | None
    ) -> tuple[_Answer | None, Exception | None]:
        """Reset the source and/or answer one request, on the worker thread."""
        step = request.step if request is not None else 0
        try:
            if do_reset:
                self.source.reset()
            if request is None:
                return None, None
            return _Answer(step, self.source.infer(request.frame)), None
        except PolicyUnavailable as e:
            return _Answer(step, None, unavailable=str(e)), None
        except Exception as e:  # not a transient outage: hand it to the loop thread
            return None, e

    # ---------------------------------------------------------------- loop thread
    def reset(self) -> None:
        """Start a new episode. Returns at once: the source's reset runs on the worker after
        any inference still in flight and before the next one (several resets with nothing
        inferred in between reset the source once)."""
        with self._lock:
            if self._closed:
                raise RuntimeError("this AsyncExecutor is closed; make a new one")
            if self._failure is not None:
                _log_discarded(self._failure, "the policy failed as the episode ended")
            self._generation += 1
            self._queue.clear()
            self._answer = None
            self._failure = None
            self._request = None
            self._in_flight = False  # one still running belongs to the old generation
            self._reset_pending = True
            self._has_work.notify()
        self._reset_episode_state()

    def _post(self, frame: dict[str, Any]) -> None:
        """Request a chunk from ``frame`` (the lock is held)."""
        self._request = _Request(self.step, frame)
        self._in_flight = True
        self._has_work.notify()

    def _consume_answer(self) -> None:
        """Raise this generation's failure, or merge its answer into the queue (lock held)."""
        if self._failure is not None:
            failure, self._failure = self._failure, None
            raise failure
        answer, self._answer = self._answer, None
        if answer is None:
            return
        if answer.result is None:
            self.last_error = answer.unavailable
            return
        self._record(answer.result)
        self._merge(answer.step, answer.result.actions)

    def _merge(self, start: int, actions: np.ndarray) -> None:
        """Put a chunk computed from the observation at step ``start`` into the queue."""
        self._queue = merge_chunk(self._queue, start, actions, self.step)
        self.chunk_step = start

    def _next(self, frame: dict[str, Any]) -> np.ndarray | None:
        with self._lock:
            if self._closed:
                raise RuntimeError("this AsyncExecutor is closed; make a new one")
            if self.step == 0 and not self._queue and self._answer is None:
                # Episode start: nothing to overlap with yet, so wait for the chunk of this
                # observation rather than holding still for the policy's latency.
                if not self._in_flight:
                    self._post(frame)
                self._has_answer.wait_for(
                    lambda: not self._in_flight or self._failure is not None or self._closed,
                    self.first_chunk_timeout_s,
                )
            self._consume_answer()
            while self._queue and self._queue[0][0] < self.step:
                self._queue.popleft()
            if len(self._queue) <= self.refill_at and not self._in_flight:
                self._post(frame)
            if self._queue and self._queue[0][0] == self.step:
                return self._queue.popleft()[1]
        return None

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._has_work.notify()
            self._has_answer.notify_all()
        self._worker.join(timeout=5.0)


class SimulatedLatencyExecutor(ChunkExecutor):
    """:class:`AsyncExecutor`'s schedule with a fixed latency counted in control steps, for
    simulation, where inference takes no simulated time.

    A chunk requested from the observation of step t (when ``refill_at`` or fewer actions are
    left queued) is inferred at once, synchronously, but only reaches the queue at step
    t + ``latency_steps`` (0: at once): its actions for the steps that passed meanwhile are dropped and
    the overlap with what is still queued is cross-faded, exactly as when the threaded
    executor's answer arrives. As there, the first step of an episode waits for the chunk of
    its own observation, a queue that runs dry gives None (the safety filter holds), and a
    failed request is asked again at the next step. Deterministic: the same observations give
    the same actions. With ``latency_steps=1`` it plays what :class:`AsyncExecutor` plays when
    the policy answers within one control period.
    """

    def __init__(self, source: ChunkSource, refill_at: int = 4, latency_steps: int = 1) -> None:
        super().__init__(source)
        if latency_steps < 0:
            raise ValueError(f"latency_steps must be >= 0, got {latency_steps}")
        if refill_at < 0:
            raise ValueError(f"refill_at must be >= 0, got {refill_at}")
        self.refill_at = refill_at
        self.latency_steps = latency_steps
        self._queue: deque[tuple[int, np.ndarray]] = deque()  # (step, (D,))
        self._pending: tuple[int, ChunkResult] | None = None  # (step asked at, answer)

    def reset(self) -> None:
        super().reset()
        self._queue.clear()
        self._pending = None

    def _next(self, frame: dict[str, Any]) -> np.ndarray | None:
        if self.step == 0 and not self._queue:
            result = self._infer(frame)  # the episode's first chunk: waited for
            if result is not None:
                self._queue = merge_chunk(self._queue, 0, result.actions, 0)
                self.chunk_step = 0
        self._arrive()
        if len(self._queue) <= self.refill_at and self._pending is None:
            result = self._infer(frame)
            if result is not None:
                self._pending = (self.step, result)
                self._arrive()  # latency 0: usable in the step it was asked at
        if self._queue and self._queue[0][0] == self.step:
            return self._queue.popleft()[1]
        return None

    def _arrive(self) -> None:
        """Merge the pending chunk if it is due, and drop the actions of steps passed."""
        if self._pending is not None and self._pending[0] + self.latency_steps <= self.step:
            start, result = self._pending
            self._pending = None
            self._queue = merge_chunk(self._queue, start, result.actions, self.step)
            self.chunk_step = start
        while self._queue and self._queue[0][0] < self.step:
            self._queue.popleft()


SyncExecutor = OpenLoopExecutor | TemporalEnsembleExecutor


def merge_chunk(
    queue: deque[tuple[int, np.ndarray]], start: int, actions: np.ndarray, now: int
) -> deque[tuple[int, np.ndarray]]:
    """The queue after a chunk computed from the observation at step ``start`` arrives at step
    ``now``: its actions for steps before ``now`` are dropped, the ones that overlap the queue
    are cross-faded from the queued plan to the new one, and the new chunk's tail follows.

    ``queue``: (step, (D,) action) pairs; ``actions``: (K, D), action i is for step start + i.
    """
    new = [(start + i, a) for i, a in enumerate(actions) if start + i >= now]
    old = {s: a for s, a in queue}
    overlap = [s for s, _ in new if s in old]
    merged: deque[tuple[int, np.ndarray]] = deque()
    for s, a in new:
        if s in old:
            # cross-fade: the first overlapped step keeps mostly the old plan
            w = (overlap.index(s) + 1) / (len(overlap) + 1)
            a = (1 - w) * old[s] + w * a
        merged.append((s, a))
    return merged


MODES = ("open_loop", "ensemble", "async", "rtc")


def make_executor(
    mode: str,
    source: ChunkSource,
    refill_at: int = 4,
    ensemble_coeff: float = 0.01,
    n_action_steps: int | None = None,
    latency_steps: int | None = None,
    hz: float | None = None,
) -> ChunkExecutor:
    """The executor of a ``--mode``. ``async`` is the threaded :class:`AsyncExecutor` (wall
    clock, a robot), or with ``latency_steps`` the deterministic
    :class:`SimulatedLatencyExecutor` (simulated time); ``open_loop`` and ``ensemble`` with
    ``latency_steps`` > 0 wait for each chunk that long, the arm holding
    (:class:`~embodied_mm.runtime.blocking.SimulatedBlockingExecutor`); ``rtc`` likewise is real-time
    chunking (:mod:`embodied_mm.runtime.rtc`; the threaded one needs the control rate
    ``hz``). ``n_action_steps`` applies to ``open_loop`` (actions played per chunk; default
    the whole chunk)."""
    if mode in ("open_loop", "ensemble"):
        if mode == "open_loop":
            sync: SyncExecutor = OpenLoopExecutor(source, n_action_steps)
        elif n_action_steps is not None:
            raise ValueError(f"n_action_steps applies to --mode open_loop, not {mode!r}")
        else:
            sync = TemporalEnsembleExecutor(source, ensemble_coeff)
        if latency_steps:
            from embodied_mm.runtime.blocking import SimulatedBlockingExecutor

            return SimulatedBlockingExecutor(sync, latency_steps)
        return sync
    if n_action_steps is not None:
        raise ValueError(f"n_action_steps applies to --mode open_loop, not {mode!r}")
    if mode == "async":
        if latency_steps is not None:
            return SimulatedLatencyExecutor(source, refill_at, latency_steps)
        return AsyncExecutor(source, refill_at)
    if mode == "rtc":
        from embodied_mm.runtime.rtc import RTCExecutor, SimulatedRTCExecutor

        if latency_steps is not None:
            return SimulatedRTCExecutor(source, refill_at, latency_steps)
        if hz is None:
            raise ValueError("--mode rtc on the wall clock needs the control rate hz")
        return RTCExecutor(source, hz, refill_at)
    raise ValueError(f"unknown execution mode {mode!r}; known: {', '.join(MODES)}")


def _log_discarded(failure: Exception, what: str) -> None:
    log.warning("%s (discarded by reset): %s: %s", what, type(failure).__name__, failure)
