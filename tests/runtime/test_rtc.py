"""``--mode rtc``: each request carries the committed prefix and its delay d; the chunk that
comes back starts with the actions executed meanwhile and replaces the queue (no
cross-fade). With the real tiny chunk head (prefix conditioning) and flow head (guidance)
behind ``LocalPolicy``, and with a threaded executor over a slow policy."""

import threading
import time

import numpy as np
import pytest
import torch

from embodied_mm.errors import UsageError
from embodied_mm.features import OBS_STATE, TASK, image_key
from embodied_mm.model.heads import HeadConfig
from embodied_mm.model.modeling_vla import VLAPolicy
from embodied_mm.runtime.chunking import make_executor
from embodied_mm.runtime.inference import RTC_DELAY, RTC_PREFIX, LocalPolicy
from embodied_mm.runtime.rtc import RTCExecutor, SimulatedRTCExecutor
from tests.model.helpers import ACTION_HIGH, ACTION_LOW, STATE_DIM, tiny_config, tiny_stats

K = 4  # the tiny configs' chunk size


class Recording:
    """A LocalPolicy that keeps every request (step it was made at, the frame) and the chunk
    answered, optionally sleeping ``delay_s`` and blocking on ``gate`` first."""

    def __init__(self, policy: LocalPolicy, delay_s: float = 0.0) -> None:
        self.policy = policy
        self.rtc_max_delay = policy.rtc_max_delay
        self.delay_s = delay_s
        self.gate: threading.Event | None = None
        self.entered = threading.Event()
        self.requests: list[tuple[dict, np.ndarray]] = []

    def infer(self, frame):
        self.entered.set()
        if self.gate is not None:
            assert self.gate.wait(30)
        time.sleep(self.delay_s)
        result = self.policy.infer(frame)
        self.requests.append((frame, result.actions))
        return result

    def reset(self):
        self.policy.reset()


def tiny_local(head: str, chunk_size: int = K, **head_fields) -> LocalPolicy:
    torch.manual_seed(0)
    cfg = tiny_config(head, chunk_size=chunk_size)
    cfg.head = HeadConfig(kind=head, expert_hidden=32, expert_layers=1, expert_heads=2,
                          flow_steps=5, **head_fields)  # fmt: skip
    return LocalPolicy(VLAPolicy(cfg, tiny_stats(), device="cpu").eval())


def obs(t: int, episode: int = 0) -> dict:
    g = np.random.default_rng(1000 * episode + t)
    return {
        image_key("front"): g.integers(0, 256, (32, 32, 3), dtype=np.uint8),
        image_key("wrist"): g.integers(0, 256, (32, 32, 3), dtype=np.uint8),
        OBS_STATE: np.full(STATE_DIM, 0.05 * t + episode, np.float32),
        TASK: "pick the red cube",
        "t": t,  # read back by the checks below; the policy ignores unknown keys
    }


def play(executor, steps: int, episode: int = 0) -> list[np.ndarray]:
    return [executor.next_action(obs(t, episode)) for t in range(steps)]


def check_prefixes(source: Recording, played: list[np.ndarray], atol: float) -> int:
    """Every prefixed request's chunk starts with the d actions played from its step on;
    returns how many prefixed requests there were."""
    n = 0
    for frame, chunk in source.requests:
        if RTC_PREFIX not in frame:
            continue
        t, d = frame["t"], frame[RTC_DELAY]
        if t + d > len(played):  # asked near the end: its delay outlasted the run
            continue
        executed = np.stack(played[t : t + d])  # (d, D) what the robot did meanwhile
        np.testing.assert_allclose(chunk[:d], executed, atol=atol, rtol=0)
        n += 1
    return n


def test_simulated_rtc_chunk_head_prefix_is_exactly_what_was_executed():
    source = Recording(tiny_local("chunk", chunk_size=8, rtc_max_delay=3))
    # asked at 4 queued, arriving 2 steps later: the old plan's last 2 actions overlap the new
    # chunk's first free ones, which a cross-fade would blend
    ex = make_executor("rtc", source, refill_at=4, latency_steps=2)
    assert isinstance(ex, SimulatedRTCExecutor)
    played = play(ex, 30)
    assert all(a is not None for a in played)
    assert check_prefixes(source, played, atol=0.0) >= 5
    assert set(ex.delays) == {2} and set(ex.arrivals) == {2}
    # no cross-fade: every played action is one of some chunk's, as it came
    chunks = [c for _, c in source.requests]
    assert all(any((a == row).all() for c in chunks for row in c) for a in played)


def test_simulated_rtc_flow_head_prefix_within_tolerance():
    source = Recording(tiny_local("flow"))
    width = np.array(ACTION_HIGH) - np.array(ACTION_LOW)
    ex = make_executor("rtc", source, refill_at=2, latency_steps=2)
    played = play(ex, 16)
    # guided inpainting is not exact: within 5 % of each dimension's range (see
    # tests/model/test_rtc_prefix.py)
    assert check_prefixes(source, played, atol=0.05 * width.min()) >= 3


def test_a_policy_that_cannot_continue_a_prefix_is_a_one_line_error():
    plain = tiny_local("chunk")
    with pytest.raises(UsageError, match="train the chunk head with --rtc-max-delay"):
        make_executor("rtc", plain, latency_steps=1)
    with pytest.raises(UsageError, match="--rtc-max-delay"):
        make_executor("rtc", plain, hz=20.0)


def test_threaded_rtc_prefix_is_executed_and_delay_estimated():
    """A 70 ms policy at 20 Hz (50 ms steps): d is 2 steps (3 under load), measured from the
    first chunk on, and each chunk still
    starts with exactly what played while it was computed."""
    source = Recording(tiny_local("chunk", rtc_max_delay=3), delay_s=0.07)
    ex = RTCExecutor(source, hz=20.0, refill_at=3)
    try:
        played = []
        for t in range(40):
            t0 = time.perf_counter()
            played.append(ex.next_action(obs(t)))
            time.sleep(max(0.0, 0.05 - (time.perf_counter() - t0)))
    finally:
        ex.close()
    assert ex.estimator.samples >= 5
    # 70 ms plus the tiny model's own time: 2 steps, 3 on a loaded machine (the clamp), never 1
    assert 2 <= ex.estimator.steps() <= 3
    # each request's d is that estimate, cut to the actions still queued (a loaded machine
    # can leave fewer than 2)
    sent = [(f[RTC_DELAY], len(f[RTC_PREFIX])) for f, _ in source.requests if RTC_PREFIX in f]
    assert len(sent) >= 3 and all(min(2, n) <= d <= min(3, n) for d, n in sent)

    # every prefix is what then played (early or late answers alike), checked where the
    # queue did not run dry meanwhile (a loaded machine can make a chunk very late)
    def played_through(f) -> bool:
        span = range(f["t"], f["t"] + f[RTC_DELAY])
        return span.stop <= len(played) and all(played[i] is not None for i in span)

    source.requests = [
        (f, c) for f, c in source.requests if RTC_PREFIX not in f or played_through(f)
    ]
    assert check_prefixes(source, played, 0.0) >= 3


def test_reset_during_an_in_flight_rtc_inference_starts_the_next_episode_clean():
    source = Recording(tiny_local("chunk", rtc_max_delay=3))
    ex = RTCExecutor(source, hz=20.0, refill_at=3)
    try:
        ex.next_action(obs(0))  # the first chunk (waited for)
        source.gate = threading.Event()
        source.entered.clear()
        ex.next_action(obs(1))  # 3 left: a prefixed request goes out and blocks
        assert source.entered.wait(10)
        ex.reset()  # while it is in flight
        assert ex.delays == [] and ex.arrivals == []
        source.gate.set()  # the old request finishes: its chunk is for a finished episode
        first = ex.next_action(obs(0, episode=1))
        n_before = len(source.requests)
        assert first is not None
    finally:
        ex.close()
    frame, chunk = source.requests[-1]
    assert n_before >= 2 and frame[OBS_STATE][0] == 1.0  # the new episode's observation
    assert RTC_PREFIX not in frame  # nothing of the old plan is committed to
    np.testing.assert_array_equal(first, chunk[0])
