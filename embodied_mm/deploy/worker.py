"""The policy server's model worker: one thread that runs every queued request as a batch.

Requests come from the event loop (:meth:`ModelWorker.submit`, which returns an asyncio
future); the thread takes everything queued while it was busy, resets the policy if a request
asked for it, runs one ``infer_batch`` per image size, checks every chunk, packs the reply and
resolves the future through ``call_soon_threadsafe``. The event loop only decodes, sends and
receives, so a request costs it one hand-off each way.

Failure handling (the worker is supervised by its own outer ``try``):

- ``infer_batch`` raising fails that batch only: each of its requests gets an error reply;
- a chunk with NaN or inf (also after the cast to float32, where 1e300 becomes inf) is never
  sent: that request gets an error reply;
- anything else (``policy.reset`` raising, a bug here) stops the worker for good: the policy's
  state is unknown, so :attr:`ModelWorker.failure` says why, every queued and later request
  gets an error reply at once, and the server's ``/healthz`` reports it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from embodied_mm.deploy.schema import RESET
from embodied_mm.deploy.wire import packb
from embodied_mm.features import image_key

log = logging.getLogger(__name__)

Reply = bytes | str  # a packed reply map, or the text of an error reply ("error: ...")


class WorkerFailed(RuntimeError):
    """The model worker has stopped; the text says why."""


@dataclass
class _Request:
    frame: dict[str, Any]
    timing: dict[str, Any]  # decode_ms, prev_total_ms: filled in by the event loop
    future: asyncio.Future[Reply]
    t_enqueued: float = field(default_factory=time.perf_counter)


_STOP = None  # sentinel on the queue


class ModelWorker:
    def __init__(self, policy: Any, cameras: tuple[str, ...], max_batch: int = 16) -> None:
        self.policy = policy
        self.cameras = cameras
        self.max_batch = max_batch
        self.failure: str | None = None
        self.batches_run = 0
        self._queue: queue.SimpleQueue[_Request | None] = queue.SimpleQueue()
        self._lock = threading.Lock()  # orders submit against the failure hand-over
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    # --- event-loop side --------------------------------------------------------------------
    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._thread = threading.Thread(target=self._run, name="policy-worker", daemon=True)
        self._thread.start()

    def submit(self, frame: dict[str, Any], timing: dict[str, Any]) -> asyncio.Future[Reply]:
        """Queue one validated frame; raises :class:`WorkerFailed` once the worker stopped."""
        assert self._loop is not None, "start() first"
        future: asyncio.Future[Reply] = self._loop.create_future()
        with self._lock:
            if self.failure is not None:
                raise WorkerFailed(self.failure)
            self._queue.put(_Request(frame, timing, future))
        return future

    def stop(self, timeout_s: float = 10.0) -> None:
        """Ask the thread to finish (after the batch it is running) and wait for it."""
        with self._lock:
            if self.failure is None:
                self.failure = "the server is shutting down"
            self._queue.put(_STOP)
        if self._thread is not None:
            self._thread.join(timeout_s)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # --- worker thread ----------------------------------------------------------------------
    def _resolve(self, req: _Request, reply: Reply) -> None:
        assert self._loop is not None

        def set_reply() -> None:
            if not req.future.done():  # the client may have gone and its handler with it
                req.future.set_result(reply)

        with contextlib.suppress(RuntimeError):  # a closed loop: the server is gone, none waits
            self._loop.call_soon_threadsafe(set_reply)

    def _run(self) -> None:
        pending: list[_Request] = []
        try:
            while True:
                first = self._queue.get()
                if first is _STOP:
                    return
                pending = [first]
                stop = False
                while len(pending) < self.max_batch:
                    try:
                        nxt = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if nxt is _STOP:
                        stop = True
                        break
                    pending.append(nxt)
                self._run_batch(pending)
                pending = []
                if stop:
                    return
        except BaseException as e:  # supervision: record why, and answer everyone
            reason = f"policy worker failed: {type(e).__name__}: {e}"
            log.error("%s; the server now answers every request with this error", reason)
            log.debug("policy worker traceback", exc_info=True)
            self._fail_all(reason, pending)
        finally:
            self._fail_all(self.failure or "the server is shutting down", [])

    def _fail_all(self, reason: str, pending: list[_Request]) -> None:
        with self._lock:
            if self.failure is None:
                self.failure = reason
            reason = self.failure
            leftovers = list(pending)
            while True:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is not _STOP:
                    leftovers.append(item)
        for req in leftovers:
            self._resolve(req, f"error: {reason}")

    def _run_batch(self, pending: list[_Request]) -> None:
        if any(r.frame[RESET] for r in pending):
            t0 = time.perf_counter()
            self.policy.reset()  # raising here is fatal: see the module docstring
            reset_ms = (time.perf_counter() - t0) * 1e3
            for r in pending:
                r.timing["reset_ms"] = reset_ms
        groups: dict[tuple, list[_Request]] = {}  # one forward pass per image size
        for r in pending:
            sig = tuple(r.frame[image_key(c)].shape for c in self.cameras)
            groups.setdefault(sig, []).append(r)
        for group in groups.values():
            self._infer_group(group)

    def _infer_group(self, group: list[_Request]) -> None:
        t_start = time.perf_counter()
        try:
            results = self.policy.infer_batch([r.frame for r in group])
            if len(results) != len(group):
                raise RuntimeError(f"infer_batch returned {len(results)} results for {len(group)}")
        except Exception as e:  # the model failed on this input: report, keep serving
            log.error("inference failed: %s: %s", type(e).__name__, e)
            log.debug("inference traceback", exc_info=True)
            for r in group:
                self._resolve(r, f"error: inference failed: {type(e).__name__}: {e}")
            return
        infer_ms = (time.perf_counter() - t_start) * 1e3
        self.batches_run += 1
        for r, result in zip(group, results, strict=True):
            self._resolve(r, self._reply(r, result, infer_ms, t_start, len(group)))

    def _reply(
        self, r: _Request, result: Any, infer_ms: float, t_start: float, batch_size: int
    ) -> Reply:
        with np.errstate(over="ignore"):  # a float64 beyond float32 becomes inf: caught below
            actions = np.asarray(result.actions, dtype=np.float32)  # (K, D)
        if actions.ndim != 2:
            return f"error: the policy returned actions of shape {actions.shape}, not (K, D)"
        if not np.isfinite(actions).all():
            log.error("the policy produced non-finite actions; sent an error instead")
            return "error: the policy produced non-finite actions (NaN or inf); none were sent"
        timing = r.timing
        timing["infer_ms"] = infer_ms  # the model's own time: infer_batch, in this thread
        timing["queue_ms"] = (t_start - r.t_enqueued) * 1e3  # hand-off + wait for the model
        timing["batch_size"] = batch_size
        reply: dict[str, Any] = {"actions": actions, "server_timing": timing}
        if result.plan is not None:
            reply["plan"] = result.plan
        return packb(reply)
