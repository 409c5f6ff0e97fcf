"""A synchronous executor whose policy takes time, in simulated time.

``open_loop`` and ``ensemble`` call the policy inside the control loop: on a robot, while a
chunk is computed the loop sends nothing new and the arm holds (the safety filter's hold).
In simulation inference takes no simulated time, so :class:`SimulatedBlockingExecutor` makes
that wait explicit: at a step where the wrapped executor would infer, it keeps that step's
observation, answers None (a hold) for ``latency_steps`` steps, and then lets the wrapped
executor infer from the kept observation and play its action. The wrapped executor counts
only the steps it plays, as its own loop does on a robot (one cycle per action, each cycle
as long as the inference), so an ensemble's chunks line up by actions played, not by the
steps spent waiting. Deterministic, like every simulated executor.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from embodied_mm.runtime.chunking import ChunkExecutor, SyncExecutor


class SimulatedBlockingExecutor(ChunkExecutor):
    """``inner`` (open loop or ensemble) with a policy that answers ``latency_steps`` (>= 1)
    control steps after it is asked, the arm holding meanwhile (module docstring)."""

    def __init__(self, inner: SyncExecutor, latency_steps: int) -> None:
        super().__init__(inner.source)
        if latency_steps < 1:
            raise ValueError(f"latency_steps must be >= 1, got {latency_steps}")
        self.inner = inner
        self.latency_steps = latency_steps
        self.model_ms = inner.model_ms  # one record of the model's times
        self._asked: tuple[int, dict[str, Any]] | None = None  # (step, observation) asked

    def reset(self) -> None:
        self.inner.reset()  # resets the source
        self._reset_episode_state()
        self._asked = None

    def _next(self, frame: dict[str, Any]) -> np.ndarray | None:
        if self._asked is None and self.inner.will_infer():
            self._asked = (self.step, frame)
        asked = self._asked
        if asked is not None:
            if self.step - asked[0] < self.latency_steps:
                return None  # the loop waits for the policy: the arm holds
            self._asked = None
            frame = asked[1]
        action = self.inner.next_action(frame)
        self.plan = self.inner.plan
        self.last_error = self.inner.last_error
        self.last_infer_ms = self.inner.last_infer_ms
        if asked is not None and action is not None:
            self.chunk_step = asked[0]  # the chunk played was computed from that observation
        return action

    def close(self) -> None:
        self.inner.close()
