"""Real-time chunking over the policy server: the committed prefix and its delay travel in
the request (``rtc.prefix``, ``rtc.delay``), old clients still work, and a policy that
cannot continue a prefix does not accept the keys."""

import numpy as np
import pytest
import torch
from websockets.sync.client import connect

from embodied_mm.deploy.client import PolicyClient, RemotePolicy
from embodied_mm.deploy.server import PolicyServer, ServerThread
from embodied_mm.deploy.wire import packb
from embodied_mm.policies import make_policy
from embodied_mm.runtime.inference import RTC_DELAY, RTC_PREFIX, LocalPolicy
from embodied_mm.runtime.rtc import RTCExecutor
from tests.deploy.clients import obs


@pytest.fixture(scope="module")
def rtc_server():
    torch.manual_seed(0)
    policy = make_policy("vla-chunk", size="tiny", head={"rtc_max_delay": 3}).eval()
    with ServerThread(PolicyServer(LocalPolicy(policy), "127.0.0.1", 0)) as st:
        yield st


def prefix(rows: int) -> np.ndarray:
    return np.linspace(-0.02, 0.02, rows * 7, dtype=np.float32).reshape(rows, 7)


def test_the_prefix_travels_and_the_chunk_starts_with_it(rtc_server):
    remote = RemotePolicy(PolicyClient(rtc_server.url))
    assert remote.rtc_max_delay == 3
    committed = prefix(4)
    result = remote.infer(obs(**{RTC_PREFIX: committed, RTC_DELAY: 2}))
    np.testing.assert_array_equal(result.actions[:2], committed[:2])
    plain = remote.infer(obs())  # an old client's request: no RTC keys
    assert plain.actions.shape == (8, 7) and not np.array_equal(plain.actions[:2], committed[:2])


def test_rtc_executor_runs_over_the_server(rtc_server):
    ex = RTCExecutor(RemotePolicy(PolicyClient(rtc_server.url)), hz=20.0, refill_at=3)
    try:
        played = [ex.next_action(obs()) for _ in range(12)]
    finally:
        ex.close()
    assert played[0] is not None and ex.arrivals and ex.estimator.samples >= 1


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({RTC_PREFIX: prefix(2)}, "go together"),
        ({RTC_PREFIX: prefix(2), RTC_DELAY: 3}, "rtc.delay must be an int in 0..2"),
        ({RTC_PREFIX: prefix(9), RTC_DELAY: 1}, "has 9 rows, 1..8"),
        ({RTC_PREFIX: np.zeros((2, 3), np.float32), RTC_DELAY: 1}, "expected (L, 7)"),
        ({RTC_PREFIX: np.full((2, 7), np.nan, np.float32), RTC_DELAY: 1}, "NaN or inf"),
    ],
)
def test_a_bad_prefix_gets_a_one_line_error(rtc_server, extra, expected):
    with connect(rtc_server.url, proxy=None) as ws:
        ws.recv()  # metadata
        ws.send(packb(obs(**extra)))
        reply = ws.recv(timeout=10)
        assert isinstance(reply, str) and reply.startswith("error: ") and expected in reply


def test_a_policy_without_rtc_refuses_the_keys(tiny_checkpoint):
    policy = LocalPolicy.from_checkpoint(tiny_checkpoint, device="cpu")
    with ServerThread(PolicyServer(policy, "127.0.0.1", 0)) as st:
        assert RemotePolicy(PolicyClient(st.url)).rtc_max_delay == 0
        with connect(st.url, proxy=None) as ws:
            ws.recv()
            ws.send(packb(obs(**{RTC_PREFIX: prefix(2), RTC_DELAY: 1})))
            reply = ws.recv(timeout=10)
    assert reply.startswith("error: ") and "unknown keys" in reply
