"""The model worker behind a real policy server: failures are reported, never hung on, and no
non-finite action leaves the server."""

import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
import torch

from embodied_mm.deploy.client import PolicyClient, ServerError
from embodied_mm.deploy.server import PolicyServer, ServerThread
from embodied_mm.runtime.inference import LocalPolicy
from tests.deploy.clients import obs
from tests.deploy.policies import FailsOnTask, Gated, HugeActions, ResetFails, load


def healthz(port: int) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_reset_failure_is_reported_not_hung_on(tiny_checkpoint):
    with ServerThread(PolicyServer(load(ResetFails, tiny_checkpoint), "127.0.0.1", 0)) as st:
        assert healthz(st.server.port) == (200, "ok\n")
        client = PolicyClient(st.url, timeout_s=30)
        with pytest.raises(ServerError, match="policy worker failed: RuntimeError: plan cache"):
            client.infer(obs(reset=True))
        status, text = healthz(st.server.port)
        assert status == 503 and "plan cache corrupted" in text
        # later requests get the reason at once, on this and on new connections
        with pytest.raises(ServerError, match="plan cache corrupted"):
            client.infer(obs())
        with pytest.raises(ServerError, match="plan cache corrupted"):
            PolicyClient(st.url, timeout_s=30).infer(obs())
        client.close()


def test_inference_error_fails_that_request_only(tiny_checkpoint):
    with ServerThread(PolicyServer(load(FailsOnTask, tiny_checkpoint), "127.0.0.1", 0)) as st:
        client = PolicyClient(st.url)
        with pytest.raises(ServerError, match="inference failed: ValueError: bad token"):
            client.infer(obs(task="explode"))
        assert client.infer(obs())["actions"].shape == (8, 7)
        assert healthz(st.server.port)[0] == 200
        client.close()


def test_nan_from_the_model_is_never_sent(tiny_checkpoint):
    policy = LocalPolicy.from_checkpoint(tiny_checkpoint, device="cpu")
    with torch.no_grad():
        for p in policy.policy.parameters():
            p.fill_(float("nan"))  # a diverged checkpoint
    assert np.isnan(policy.infer(obs()).actions).all()
    with ServerThread(PolicyServer(policy, "127.0.0.1", 0)) as st:
        client = PolicyClient(st.url)
        with pytest.raises(ServerError, match="non-finite actions"):
            client.infer(obs())
        client.close()


def test_actions_that_overflow_float32_are_never_sent(tiny_checkpoint):
    with ServerThread(PolicyServer(load(HugeActions, tiny_checkpoint), "127.0.0.1", 0)) as st:
        client = PolicyClient(st.url)
        with pytest.raises(ServerError, match="non-finite actions"):
            client.infer(obs())
        client.close()


def test_model_time_excludes_the_hand_off_back_to_the_event_loop(tiny_checkpoint):
    """While the model runs, the event loop is made busy for 1 s: that wait is the server's,
    not the model's, so it must not show in infer_ms (it shows in the round trip)."""
    policy = load(Gated, tiny_checkpoint)
    with ServerThread(PolicyServer(policy, "127.0.0.1", 0)) as st:
        client = PolicyClient(st.url, timeout_s=60)
        client.connect()
        replies = []
        request = threading.Thread(target=lambda: replies.append(client.infer(obs())))
        request.start()
        assert policy.entered.wait(timeout=60)
        loop_busy = threading.Event()

        def block_the_loop():
            loop_busy.set()
            time.sleep(1.0)

        st._loop.call_soon_threadsafe(block_the_loop)
        assert loop_busy.wait(timeout=60)
        policy.gate.set()  # the model finishes while the loop is still blocked
        request.join(timeout=60)
        timing = replies[0]["server_timing"]
        # the model's own time plus at most a thread switch; the loop's 1 s is not in it
        assert timing["infer_ms"] < policy.own_ms[0] + 500
        assert {"infer_ms", "queue_ms", "decode_ms", "batch_size"} <= timing.keys()
        client.close()


def test_waiting_for_a_busy_model_is_queueing(tiny_checkpoint):
    policy = load(Gated, tiny_checkpoint)
    with ServerThread(PolicyServer(policy, "127.0.0.1", 0)) as st:
        first, second = PolicyClient(st.url, timeout_s=60), PolicyClient(st.url, timeout_s=60)
        first.connect(), second.connect()
        replies: dict[str, dict] = {}
        t1 = threading.Thread(target=lambda: replies.setdefault("first", first.infer(obs())))
        t1.start()
        assert policy.entered.wait(timeout=60)
        t2 = threading.Thread(target=lambda: replies.setdefault("second", second.infer(obs())))
        t2.start()
        queue = st.server._worker._queue
        deadline = time.monotonic() + 60
        while queue.qsize() == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert queue.qsize() == 1  # the second request waits behind the first's model call
        time.sleep(0.5)
        policy.gate.set()
        t1.join(timeout=60), t2.join(timeout=60)
        assert replies["first"]["server_timing"]["infer_ms"] >= 500
        assert replies["second"]["server_timing"]["queue_ms"] >= 500
        first.close(), second.close()


def test_server_threads_are_gone_after_shutdown(tiny_checkpoint):
    before = set(threading.enumerate())
    policy = LocalPolicy.from_checkpoint(tiny_checkpoint, device="cpu")
    with ServerThread(PolicyServer(policy, "127.0.0.1", 0, max_message_bytes=4_000_000)) as st:
        client = PolicyClient(st.url)
        big = np.zeros((700, 700, 3), np.uint8)  # > 1 MiB: decoded on the decode thread
        big_obs = obs(**{"observation.images.front": big, "observation.images.wrist": big})
        assert client.infer(big_obs)["actions"].shape == (8, 7)
        client.close()
    left = [
        t.name
        for t in threading.enumerate()
        if t not in before and t.is_alive() and t.name.startswith("policy")
    ]
    assert left == []
