"""One batched policy call per control step for many envs, each with its own chunk executor.

Every env of a vectorised evaluation has its own :class:`~embodied_mm.runtime.controller.
Controller`, whose executor decides, as on a robot, whether this step needs a chunk.
:class:`StepBatcher` runs one step of every live env, each on a thread of its own; an
executor that wants a chunk calls its env's :meth:`StepBatcher.source`, which blocks. Once
every env of the step has either asked or finished its step, the frames asked for are
answered by one ``infer_batch`` (in env order) and the askers go on. The executors decide
when to infer; the batcher only decides how. Which envs ask at a step depends on the
episodes alone, so a run is as deterministic as its executors.

Threads rather than a two-phase executor API: an executor keeps its one synchronous
``source.infer`` call, the same code path as on a robot.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol, TypeVar

from embodied_mm.runtime.inference import ChunkResult

T = TypeVar("T")


class BatchPolicy(Protocol):
    """What the batcher calls: ``LocalPolicy`` (torch or onnxruntime) has it."""

    def infer_batch(self, frames: list[dict[str, Any]]) -> list[ChunkResult]: ...

    def reset(self) -> None: ...


class StepBatcher:
    """Collects the chunk requests of one step of ``num_envs`` envs into one ``infer_batch``."""

    def __init__(self, policy: BatchPolicy, num_envs: int) -> None:
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        self.policy = policy
        self.num_envs = num_envs
        self.batch_sizes: list[int] = []  # one entry per infer_batch call
        self._pool = ThreadPoolExecutor(num_envs, thread_name_prefix="env-step")
        self._lock = threading.Condition()
        self._undecided: set[int] = set()  # envs of this step neither asking nor finished
        self._asking: dict[int, dict[str, Any]] = {}  # env -> frame, not yet answered
        self._answers: dict[int, ChunkResult | BaseException] = {}

    def source(self, env: int) -> _EnvSource:
        """The chunk source env ``env``'s executor is built on."""
        if not 0 <= env < self.num_envs:
            raise ValueError(f"env {env} is outside [0, {self.num_envs})")
        return _EnvSource(self, env)

    def run_step(self, steps: Mapping[int, Callable[[], T]]) -> dict[int, T]:
        """Run ``steps[env]()`` for every env given, concurrently; their chunk requests are
        answered together. Returns env → result; the first exception (in env order) is
        raised once all are done."""
        with self._lock:
            self._undecided = set(steps)
            self._asking.clear()
            self._answers.clear()
        futures = {env: self._pool.submit(self._run_one, env, fn) for env, fn in steps.items()}
        return {env: futures[env].result() for env in sorted(futures)}

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    # ------------------------------------------------------------------ env threads
    def _run_one(self, env: int, fn: Callable[[], T]) -> T:
        try:
            return fn()
        finally:
            with self._lock:
                self._decided(env)

    def _infer(self, env: int, frame: dict[str, Any]) -> ChunkResult:
        with self._lock:
            self._asking[env] = frame
            self._decided(env)
            self._lock.wait_for(lambda: env in self._answers)
            answer = self._answers.pop(env)
        if isinstance(answer, BaseException):
            raise answer
        return answer

    def _decided(self, env: int) -> None:
        """``env`` asked or finished (lock held); the last one to decide runs the batch."""
        self._undecided.discard(env)
        if self._undecided or not self._asking:
            return
        envs = sorted(self._asking)
        frames = [self._asking[e] for e in envs]
        self._asking.clear()
        try:
            results: list[ChunkResult | BaseException] = list(self.policy.infer_batch(frames))
            if len(results) != len(frames):
                raise RuntimeError(f"infer_batch gave {len(results)} results for {len(frames)}")
        except Exception as e:  # every asker raises it in its own step
            results = [e] * len(envs)
        self.batch_sizes.append(len(frames))
        self._answers.update(zip(envs, results, strict=True))
        self._lock.notify_all()


class _EnvSource:
    """One env's view of the batcher: a :class:`~embodied_mm.runtime.inference.ChunkSource`."""

    def __init__(self, batcher: StepBatcher, env: int) -> None:
        self.batcher = batcher
        self.env = env

    def infer(self, frame: dict[str, Any]) -> ChunkResult:
        return self.batcher._infer(self.env, frame)

    @property
    def rtc_max_delay(self) -> int:
        """The policy's (real-time chunking, ``--mode rtc``); 0 when it cannot continue one."""
        return int(getattr(self.batcher.policy, "rtc_max_delay", 0) or 0)

    def reset(self) -> None:
        # The policy keeps no per-episode state but an instruction cache, shared by all envs.
        self.batcher.policy.reset()
