"""Chunk executors. ``RampSource`` is a deterministic policy whose chunk predicts "the action at
step t is t" (it reads the step from the state), so alignment errors show up as wrong numbers.
Episodes use frames far apart (episode e starts at t = 100 e or 1000 e), so an action of the
wrong episode shows up as a wrong number too."""

import threading
import time

import numpy as np
import pytest

from embodied_mm.deploy.client import PolicyClient, RemotePolicy
from embodied_mm.deploy.server import PolicyServer, ServerThread
from embodied_mm.features import OBS_STATE, TASK, image_key
from embodied_mm.model.modeling_vla import VLAPolicy
from embodied_mm.processor.tokenize import TokenizeTask
from embodied_mm.runtime.blocking import SimulatedBlockingExecutor
from embodied_mm.runtime.chunking import (
    AsyncExecutor,
    OpenLoopExecutor,
    SimulatedLatencyExecutor,
    TemporalEnsembleExecutor,
    make_executor,
    merge_chunk,
)
from embodied_mm.runtime.inference import ChunkResult, LocalPolicy, PolicyUnavailable
from tests.preemption import pausing_inside


class RampSource:
    """Also checks the source contract of the async executor: ``reset`` never runs while an
    ``infer`` does, and :attr:`log` has every call in order."""

    def __init__(self, k: int = 4, delay_s: float = 0.0, offset_per_call: float = 0.0) -> None:
        self.k, self.delay_s, self.offset_per_call = k, delay_s, offset_per_call
        self.calls = 0
        self.resets = 0
        self.inferring = False
        self.resets_during_infer = 0
        self.log: list[str] = []  # "reset", "infer <t>", "failed"

    def infer(self, frame):
        call = self.calls
        self.calls += 1
        self.inferring = True
        try:
            self.during(call)
            time.sleep(self.delay_s)
            t = float(frame[OBS_STATE][0])
            self.log.append(f"infer {t:g}")
            chunk = np.arange(t, t + self.k, dtype=np.float32)[:, None]  # (K, 1)
            return ChunkResult(chunk + self.offset_per_call * call)
        finally:
            self.inferring = False

    def during(self, call: int) -> None:
        """Runs inside call number ``call``; subclasses block or fail here."""

    def reset(self):
        if self.inferring:
            self.resets_during_infer += 1
        self.resets += 1
        self.log.append("reset")


class HeldCall(RampSource):
    """Call number ``held`` blocks until :attr:`release` is set, then answers or raises
    ``error``: an inference still running (or about to fail) when the episode is reset."""

    def __init__(self, k: int, held: int, error: Exception | None = None) -> None:
        super().__init__(k)
        self.held, self.error = held, error
        self.entered = threading.Event()
        self.release = threading.Event()

    def during(self, call: int) -> None:
        if call != self.held:
            return
        self.entered.set()
        assert self.release.wait(30), "the test never released the held call"
        if self.error is not None:
            self.log.append("failed")
            raise self.error


def frame(t: int):
    return {OBS_STATE: np.array([t], np.float32)}


def first(action) -> float | None:
    return None if action is None else float(action[0])


def release_later(event: threading.Event, delay_s: float = 0.3) -> threading.Timer:
    """Set ``event`` from another thread while this one is blocked in the executor."""
    timer = threading.Timer(delay_s, event.set)
    timer.start()
    return timer


def test_open_loop_plays_each_chunk_then_infers_again():
    src = RampSource(k=4)
    ex = OpenLoopExecutor(src)
    out = [ex.next_action(frame(t))[0] for t in range(10)]
    assert out == list(range(10)) and src.calls == 3
    ex2 = OpenLoopExecutor(RampSource(k=4), n_action_steps=2)
    assert [ex2.next_action(frame(t))[0] for t in range(4)] == [0, 1, 2, 3]
    assert ex2.source.calls == 2


def test_temporal_ensemble_weights_older_predictions_more():
    src = RampSource(k=3, offset_per_call=10.0)  # call n predicts t + 10 n
    ex = TemporalEnsembleExecutor(src, coeff=0.5)
    for t in range(2):
        ex.next_action(frame(t))
    a2 = ex.next_action(frame(2))[0]
    # chunks from calls 0, 1, 2 all cover step 2: predictions 2, 12, 22, weights e^0, e^-.5, e^-1
    w = np.exp(-0.5 * np.arange(3))
    assert a2 == pytest.approx((w * np.array([2, 12, 22])).sum() / w.sum())
    ex.next_action(frame(3))  # the chunk of call 0 (steps 0..2) has expired
    assert len(ex._chunks) == 3 and ex._chunks[0][0] == 1


def test_async_keeps_actions_aligned_while_inference_runs():
    src = RampSource(k=8, delay_s=0.03)
    ex = AsyncExecutor(src, refill_at=5)
    try:
        out = []
        for t in range(30):
            out.append(ex.next_action(frame(t)))
            time.sleep(0.01)  # a 100 Hz loop, the policy takes 3 periods
        # Whether the queue ever runs dry depends on machine load (that is what the benchmark
        # measures); what must hold is that every action played is the one for its step, i.e.
        # elapsed actions of a late chunk were dropped.
        played = [(t, a[0]) for t, a in enumerate(out) if a is not None]
        assert all(a == pytest.approx(t) for t, a in played)
        assert len(played) > 8 and src.calls >= 2  # chunks after the first one were played
    finally:
        ex.close()


def test_async_crossfades_the_overlap():
    src = RampSource(k=8, delay_s=0.0, offset_per_call=100.0)
    ex = AsyncExecutor(src, refill_at=8)
    try:
        first = ex.next_action(frame(0))[0]  # warm start (call 0), then a refill is requested
        deadline = time.monotonic() + 5
        while ex._answer is None and time.monotonic() < deadline:
            time.sleep(0.005)
        a1 = ex.next_action(frame(1))[0]
        # step 1: the old chunk says 1, the new one (call 1, from step 0) says 101; 7 steps
        # overlap, and the first of them takes 1/8 of the new plan
        assert first == 0 and a1 == pytest.approx(1 + 100 / 8)
    finally:
        ex.close()


def test_unreachable_server_gives_no_action():
    client = PolicyClient("ws://127.0.0.1:9", connect_timeout_s=0.2)  # discard port: refused
    ex = OpenLoopExecutor(RemotePolicy(client))
    assert ex.next_action(frame(0)) is None
    assert "cannot connect" in ex.last_error


def test_reset_clears_queue_and_resets_source():
    src = RampSource(k=4)
    ex = OpenLoopExecutor(src)
    ex.next_action(frame(0))
    ex.reset()
    assert src.resets == 1 and ex.step == 0
    assert ex.next_action(frame(7))[0] == 7  # a fresh chunk, not the old queue


def test_async_reraises_a_policy_bug_in_the_loop_thread():
    class Broken(RampSource):
        def infer(self, frame):
            if self.calls >= 1:
                raise RuntimeError("shape mismatch in the model")
            return super().infer(frame)

    ex = AsyncExecutor(Broken(k=4), refill_at=4)
    try:
        ex.next_action(frame(0))  # warm start works, the background refill fails
        with pytest.raises(RuntimeError, match="shape mismatch"):
            for t in range(1, 1000):  # until the background failure surfaces
                ex.next_action(frame(t))
                time.sleep(0.01)
    finally:
        ex.close()


def test_first_step_after_a_reset_during_a_slow_inference_plays_a_fresh_chunk():
    src = HeldCall(k=4, held=1)
    ex = AsyncExecutor(src, refill_at=4)
    timer = None
    try:
        assert first(ex.next_action(frame(0))) == 0  # call 0; the refill (call 1) is posted
        assert src.entered.wait(10)
        ex.reset()  # episode 1's refill is still running
        timer = release_later(src.release)
        out = [first(ex.next_action(frame(100 + t))) for t in range(4)]
        # No hold at step 0 and nothing of episode 1's chunk (0..3): episode 2 starts on the
        # chunk of its own first observation, computed after the source was reset.
        assert out == [100, 101, 102, 103]
        assert src.log[:4] == ["infer 0", "infer 0", "reset", "infer 100"]
        assert src.resets_during_infer == 0
    finally:
        src.release.set()
        if timer is not None:
            timer.join()
        ex.close()


@pytest.mark.parametrize(
    "error", [RuntimeError("bug hit in episode 1"), PolicyUnavailable("server gone in episode 1")]
)
def test_a_failure_of_the_previous_episodes_request_stays_there(error, caplog):
    src = HeldCall(k=4, held=1, error=error)
    ex = AsyncExecutor(src, refill_at=4)
    timer = None
    try:
        ex.next_action(frame(0))
        assert src.entered.wait(10)
        ex.reset()  # episode 1's refill will fail after the reset
        timer = release_later(src.release)
        out = [first(ex.next_action(frame(100 + t))) for t in range(4)]
        assert out == [100, 101, 102, 103] and ex.last_error is None
        assert src.log[:4] == ["infer 0", "failed", "reset", "infer 100"]  # it failed before
        for t in range(4, 20):  # ... and never surfaces in this episode
            ex.next_action(frame(100 + t))
            assert ex.last_error is None
        if not isinstance(error, PolicyUnavailable):  # a bug is not dropped silently
            assert "bug hit in episode 1" in caplog.text
    finally:
        src.release.set()
        if timer is not None:
            timer.join()
        ex.close()


def test_a_failure_of_the_episodes_own_first_request_is_raised_at_its_first_step():
    src = HeldCall(k=4, held=0, error=RuntimeError("shape mismatch in the model"))
    src.release.set()
    ex = AsyncExecutor(src)
    try:
        with pytest.raises(RuntimeError, match="shape mismatch"):
            ex.next_action(frame(0))
        ex.reset()
        assert first(ex.next_action(frame(100))) == 100  # the next episode works again
    finally:
        ex.close()


def test_first_step_holds_when_the_first_chunk_is_later_than_the_timeout():
    src = HeldCall(k=4, held=0)
    ex = AsyncExecutor(src, refill_at=0, first_chunk_timeout_s=0.05)
    try:
        assert ex.next_action(frame(0)) is None  # still held: the step holds
        src.release.set()
        deadline = time.monotonic() + 10
        while ex._in_flight and time.monotonic() < deadline:
            time.sleep(0.005)
        assert first(ex.next_action(frame(1))) == 1  # the late chunk, minus the passed step
    finally:
        src.release.set()
        ex.close()


def test_many_rapid_resets_with_inference_in_flight():
    src = RampSource(k=4, delay_s=0.01)
    ex = AsyncExecutor(src, refill_at=4)  # every step keeps a refill in flight
    try:
        out = []
        for ep in range(1, 25):
            ex.reset()
            out.append([first(ex.next_action(frame(1000 * ep + t))) for t in range(2)])
            ex.reset()  # an episode cut short at once: nothing of it may leak either
        assert out == [[1000 * ep, 1000 * ep + 1] for ep in range(1, 25)]
        assert src.resets_during_infer == 0
        # The source is reset between the inferences of two episodes, never in the middle.
        episode_of_last, reset_since = None, False
        for entry in src.log:
            if entry == "reset":
                reset_since = True
                continue
            episode = int(float(entry.split()[1])) // 1000
            assert episode == episode_of_last or reset_since, src.log
            episode_of_last, reset_since = episode, False
    finally:
        ex.close()


def _policy_frame(policy: VLAPolicy, task: str) -> dict:
    cfg = policy.config
    size = cfg.image_size
    out = {image_key(c): np.full((size, size, 3), 128, np.uint8) for c in cfg.cameras}
    out[OBS_STATE] = np.linspace(-0.5, 0.5, cfg.state_dim, dtype=np.float32)
    out[TASK] = task
    return out


def test_resets_racing_a_real_policys_inference(tiny_policy):
    """The old executor reset the policy from the loop thread while the worker was inside the
    instruction encoding (now ``TokenizeTask.encode``), whose cache reset() clears (a KeyError
    ended the run). The trace pause lets a reset land between any two lines of that function."""
    tasks = ["pick up the red cube", "lift the blue block", "reach the green ball"]
    local = LocalPolicy(tiny_policy)
    expected = {task: local.infer(_policy_frame(tiny_policy, task)).actions[0] for task in tasks}
    assert not np.allclose(expected[tasks[0]], expected[tasks[1]])  # the check has teeth
    with pausing_inside(TokenizeTask.encode.__code__):
        ex = AsyncExecutor(local, refill_at=tiny_policy.config.chunk_size)
    starts = []  # (task, the first action of its episode)
    try:
        for ep in range(12):
            task = tasks[ep % len(tasks)]
            ex.reset()
            obs = _policy_frame(tiny_policy, task)
            starts.append((task, ex.next_action(obs)))  # ... and the refill goes in flight
            ex.next_action(obs)  # a KeyError in the worker would be raised here
            for _ in range(3):  # resets while that refill is inside the policy
                time.sleep(0.002)
                ex.reset()
        assert ex.last_error is None
    finally:
        ex.close()
    for ep, (task, action) in enumerate(starts):
        assert action is not None, f"episode {ep} started with a hold"
        np.testing.assert_allclose(action, expected[task], rtol=1e-5, atol=1e-6)


class HeldServerPolicy(LocalPolicy):
    """The real policy behind a real server; batch number ``held`` waits for :attr:`release`.
    :attr:`log` has "reset" and "infer" in the order the server called them."""

    def __init__(self, policy: VLAPolicy, held: int) -> None:
        super().__init__(policy)
        self.held = held
        self.batches = 0
        self.entered = threading.Event()
        self.release = threading.Event()
        self.log: list[str] = []

    def reset(self) -> None:
        self.log.append("reset")
        super().reset()

    def infer_batch(self, frames):
        n = self.batches
        self.batches += 1
        if n == self.held:
            self.entered.set()
            assert self.release.wait(30), "the test never released the held batch"
        self.log.append("infer")
        return super().infer_batch(frames)


def test_a_reset_during_a_remote_request_reaches_the_server(tiny_policy):
    """RemotePolicy sends a reset with its next request; the old executor called reset() while
    a request was in flight, whose reply then cleared the flag: the server never saw it."""
    served = HeldServerPolicy(tiny_policy, held=1)
    obs = _policy_frame(tiny_policy, "pick up the red cube")
    with ServerThread(PolicyServer(served, "127.0.0.1", 0)) as st:
        client = PolicyClient(st.url, timeout_s=30.0)
        ex = AsyncExecutor(RemotePolicy(client), refill_at=tiny_policy.config.chunk_size)
        timer = None
        try:
            assert ex.next_action(obs) is not None  # request 0; request 1 goes in flight
            assert served.entered.wait(10)
            ex.reset()
            timer = release_later(served.release)
            assert ex.next_action(obs) is not None  # episode 2's first step: no hold
            assert served.log[:4] == ["reset", "infer", "infer", "reset"]
        finally:
            served.release.set()
            if timer is not None:
                timer.join()
            ex.close()
            client.close()


# ------------------------------------------------------------ async in simulated time
def _play(ex, steps: int, start: int = 0) -> list[float | None]:
    return [first(ex.next_action(frame(t))) for t in range(start, start + steps)]


def test_simulated_latency_plays_the_async_schedule_one_step_late():
    """A chunk asked for at step t lands at t + 1: the steps that passed are dropped and the
    overlap with the queued chunk is cross-faded 1/4, 2/4, 3/4 towards the new one."""
    src = RampSource(k=8, offset_per_call=0.5)  # call c predicts t + 0.5 c
    ex = SimulatedLatencyExecutor(src, refill_at=4, latency_steps=1)
    assert _play(ex, 10) == [0, 1, 2, 3, 4, 5.125, 6.25, 7.375, 8.5, 9.625]
    assert src.log == ["infer 0", "infer 4", "infer 8"]  # asked when 4 were left


def test_simulated_latency_of_three_steps_drops_what_it_missed():
    src = RampSource(k=8, offset_per_call=0.5)
    ex = SimulatedLatencyExecutor(src, refill_at=4, latency_steps=3)
    # asked at 4, lands at 7 (steps 4..6 of it passed; 7 cross-faded 1/2); asked at 8, lands at 11
    assert _play(ex, 12) == [0, 1, 2, 3, 4, 5, 6, 7.25, 8.5, 9.5, 10.5, 11.75]


def test_simulated_latency_of_zero_merges_in_the_step_it_asks():
    src = RampSource(k=8, offset_per_call=0.5)
    ex = SimulatedLatencyExecutor(src, refill_at=4, latency_steps=0)
    # asked at 4 with 4..7 queued: merged at once, 4 already cross-faded 1/5 towards call 1
    assert _play(ex, 6) == pytest.approx([0, 1, 2, 3, 4.1, 5.2])
    assert src.log == ["infer 0", "infer 4"]


def test_simulated_latency_runs_dry_then_resets_cleanly():
    src = RampSource(k=4)
    ex = SimulatedLatencyExecutor(src, refill_at=0, latency_steps=2)
    # the queue empties at 4; the chunk asked for there lands at 6: two steps without an action
    assert _play(ex, 8) == [0, 1, 2, 3, None, None, 6, 7]
    ex.reset()  # a pending chunk of the old episode never reaches the new one
    assert _play(ex, 2, start=1000) == [1000, 1001]
    assert src.resets == 1 and src.log[-2:] == ["reset", "infer 1000"]


def test_simulated_latency_asks_again_after_a_failure():
    class DownAtCall1(RampSource):
        def during(self, call):
            if call == 1:
                raise PolicyUnavailable("server down")

    ex = SimulatedLatencyExecutor(DownAtCall1(k=4), refill_at=1, latency_steps=1)
    # step 3 asks and fails (the queue still plays 3), step 4 asks again; it lands at 5
    assert _play(ex, 6) == [0, 1, 2, 3, None, 5]
    assert ex.last_error is None  # the second request succeeded


def test_merge_chunk_is_what_the_threaded_executor_merges():
    from collections import deque

    queued = deque((s, np.array([float(s)])) for s in (5, 6, 7))
    merged = merge_chunk(queued, 4, np.array([[4.0], [5.5], [6.5], [7.5], [8.5]]), now=5)
    assert [s for s, _ in merged] == [5, 6, 7, 8]
    np.testing.assert_allclose([a[0] for _, a in merged], [5.125, 6.25, 7.375, 8.5])


@pytest.mark.parametrize(
    ("mode", "kwargs", "cls"),
    [
        ("open_loop", {"n_action_steps": 2}, OpenLoopExecutor),
        ("ensemble", {}, TemporalEnsembleExecutor),
        ("async", {"latency_steps": 2}, SimulatedLatencyExecutor),
        ("async", {"latency_steps": 0}, SimulatedLatencyExecutor),
        ("open_loop", {"latency_steps": 0}, OpenLoopExecutor),
        ("ensemble", {"latency_steps": 3}, SimulatedBlockingExecutor),
    ],
)
def test_make_executor_builds_each_mode(mode, kwargs, cls):
    ex = make_executor(mode, RampSource(k=4), **kwargs)
    assert type(ex) is cls


def test_make_executor_rejects_bad_modes_and_knobs():
    with pytest.raises(ValueError, match=r"unknown execution mode 'magic'; known: open_loop"):
        make_executor("magic", RampSource())
    with pytest.raises(ValueError, match="n_action_steps applies to --mode open_loop"):
        make_executor("ensemble", RampSource(), n_action_steps=2)
    with pytest.raises(ValueError, match="latency_steps must be >= 0"):
        make_executor("async", RampSource(), latency_steps=-1)
    with pytest.raises(ValueError, match="n_action_steps must be >= 1"):
        OpenLoopExecutor(RampSource(), n_action_steps=0)
