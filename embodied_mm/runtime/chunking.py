"""Action-chunk execution: how a (K, D) chunk becomes one action per control step.

- :class:`OpenLoopExecutor`: infer, play the first ``n_action_steps`` actions blind, repeat.
- :class:`TemporalEnsembleExecutor` (ACT, Zhao et al. 2023): infer every step; the action for
  step t is the weighted mean of every chunk's prediction for t, weight ``exp(-m * i)`` with
  i = 0 for the oldest prediction, so a new chunk refines rather than jerks the motion.
- :class:`AsyncExecutor`: inference runs on a worker thread. When the queue runs low, the next
  chunk is requested from the current observation while the queue keeps playing; when it
  arrives, the actions whose steps already passed are dropped and the overlap with what is
  still queued is cross-faded from old to new.

Every executor returns None from :meth:`next_action` when it has no fresh action (the policy
failed, or the async queue ran dry); the safety filter's watchdog turns that into a hold.
"""

from __future__ import annotations

import abc
import threading
from collections import deque
from typing import Any

import numpy as np

from embodied_mm.runtime.inference import ChunkResult, ChunkSource, PolicyUnavailable


class ChunkExecutor(abc.ABC):
    """Turns chunks from a :class:`ChunkSource` into one action per step."""

    def __init__(self, source: ChunkSource) -> None:
        self.source = source
        self.step = 0
        self.plan: str | None = None
        self.last_error: str | None = None
        self.last_infer_ms: float | None = None

    def reset(self) -> None:
        self.step = 0
        self.plan = None
        self.source.reset()

    def next_action(self, frame: dict[str, Any]) -> np.ndarray | None:
        """(D,) action for the current step, or None when none is available."""
        try:
            return self._next(frame)
        finally:
            self.step += 1

    @abc.abstractmethod
    def _next(self, frame: dict[str, Any]) -> np.ndarray | None: ...

    def _infer(self, frame: dict[str, Any]) -> ChunkResult | None:
        try:
            result = self.source.infer(frame)
        except PolicyUnavailable as e:
            self.last_error = str(e)
            return None
        self.last_error = None
        self.last_infer_ms = result.infer_ms
        if result.plan is not None:
            self.plan = result.plan
        return result

    def close(self) -> None:  # noqa: B027 (only the async executor owns a thread)
        """Release worker threads."""


class OpenLoopExecutor(ChunkExecutor):
    def __init__(self, source: ChunkSource, n_action_steps: int | None = None) -> None:
        super().__init__(source)
        self.n_action_steps = n_action_steps
        self._queue: deque[np.ndarray] = deque()

    def reset(self) -> None:
        super().reset()
        self._queue.clear()

    def _next(self, frame: dict[str, Any]) -> np.ndarray | None:
        if not self._queue:
            result = self._infer(frame)
            if result is None:
                return None
            n = self.n_action_steps or len(result.actions)
            self._queue.extend(result.actions[:n])
        return self._queue.popleft()


class TemporalEnsembleExecutor(ChunkExecutor):
    def __init__(self, source: ChunkSource, coeff: float = 0.01) -> None:
        super().__init__(source)
        self.coeff = coeff
        self._chunks: deque[tuple[int, np.ndarray]] = deque()  # (start step, (K, D))

    def reset(self) -> None:
        super().reset()
        self._chunks.clear()

    def _next(self, frame: dict[str, Any]) -> np.ndarray | None:
        result = self._infer(frame)
        if result is None:
            return None
        t = self.step
        self._chunks.append((t, result.actions))
        while self._chunks and self._chunks[0][0] + len(self._chunks[0][1]) <= t:
            self._chunks.popleft()
        preds = np.stack(
            [chunk[t - start] for start, chunk in self._chunks]
        )  # (N, D), oldest first
        weights = np.exp(-self.coeff * np.arange(len(preds)))  # (N,)
        return (weights[:, None] * preds).sum(0) / weights.sum()


class AsyncExecutor(ChunkExecutor):
    """Overlaps inference with execution.

    ``refill_at``: request the next chunk when this many actions (or fewer) are left queued;
    it should cover the policy's latency in steps, so the queue never runs dry.
    """

    def __init__(self, source: ChunkSource, refill_at: int = 4) -> None:
        super().__init__(source)
        self.refill_at = refill_at
        self._queue: deque[tuple[int, np.ndarray]] = deque()  # (step, (D,))
        self._lock = threading.Lock()
        self._ready: tuple[int, ChunkResult] | None = None
        self._busy = False
        self._wake = threading.Condition(self._lock)
        self._request: tuple[int, dict[str, Any]] | None = None
        self._generation = 0  # bumped by reset so a chunk from the last episode is dropped
        self._failure: BaseException | None = None  # raised in the loop thread by _next
        self._closed = False
        self._worker = threading.Thread(target=self._work, name="async-inference", daemon=True)
        self._worker.start()

    def _work(self) -> None:
        while True:
            with self._wake:
                while self._request is None and not self._closed:
                    self._wake.wait()
                if self._closed:
                    return
                step, frame = self._request  # type: ignore[misc]
                self._request = None
                generation = self._generation
            failure: BaseException | None = None
            try:
                result = self._infer(frame)
            except Exception as e:  # not a transient outage: hand it to the loop thread
                result, failure = None, e
            with self._lock:
                self._busy = False
                self._failure = failure
                if result is not None and generation == self._generation:
                    self._ready = (step, result)

    def reset(self) -> None:
        with self._lock:
            self._queue.clear()
            self._ready = None
            self._request = None
            self._generation += 1
        super().reset()

    def _merge(self, start: int, actions: np.ndarray) -> None:
        """Put a chunk computed from the observation at step ``start`` into the queue."""
        new = [(start + i, a) for i, a in enumerate(actions) if start + i >= self.step]
        old = {s: a for s, a in self._queue}
        overlap = [s for s, _ in new if s in old]
        merged: deque[tuple[int, np.ndarray]] = deque()
        for s, a in new:
            if s in old:
                # cross-fade: the first overlapped step keeps mostly the old plan
                w = (overlap.index(s) + 1) / (len(overlap) + 1)
                a = (1 - w) * old[s] + w * a
            merged.append((s, a))
        self._queue = merged

    def _next(self, frame: dict[str, Any]) -> np.ndarray | None:
        if self.step == 0 and not self._queue and self._ready is None and not self._busy:
            # Episode start: nothing to overlap with yet, so wait for the first chunk here
            # rather than holding still for the policy's latency.
            first = self._infer(frame)
            if first is not None:
                with self._lock:
                    self._merge(0, first.actions)
        with self._wake:
            if self._failure is not None:
                failure, self._failure = self._failure, None
                raise failure
            if self._ready is not None:
                start, result = self._ready
                self._ready = None
                self._merge(start, result.actions)
            while self._queue and self._queue[0][0] < self.step:
                self._queue.popleft()
            if len(self._queue) <= self.refill_at and not self._busy:
                self._busy = True
                self._request = (self.step, frame)
                self._wake.notify()
            if self._queue and self._queue[0][0] == self.step:
                return self._queue.popleft()[1]
        return None

    def close(self) -> None:
        with self._wake:
            self._closed = True
            self._wake.notify()
        self._worker.join(timeout=5.0)
