"""The policy server in-process (background event loop) with the real tiny policy."""

import threading
import time
import urllib.request

import msgpack
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from embodied_mm.deploy.client import PolicyClient, RemotePolicy
from embodied_mm.deploy.server import PolicyServer, ServerThread
from embodied_mm.deploy.wire import packb, unpackb
from embodied_mm.runtime.inference import LocalPolicy, PolicyUnavailable
from tests.deploy.clients import obs


@pytest.fixture(scope="module")
def policy(tiny_checkpoint):
    return LocalPolicy.from_checkpoint(tiny_checkpoint, device="cpu")


@pytest.fixture(scope="module")
def server(policy):
    with ServerThread(PolicyServer(policy, "127.0.0.1", 0, max_message_bytes=2_000_000)) as st:
        yield st


def test_metadata_then_actions_with_server_timing(server):
    client = PolicyClient(server.url)
    meta = client.connect()
    assert meta["cameras"] == ["front", "wrist"] and meta["state_dim"] == 15
    assert meta["action_dim"] == 7 and meta["chunk_size"] == 8
    reply = client.infer(obs())
    assert reply["actions"].shape == (8, 7) and reply["actions"].dtype == np.float32
    assert reply["server_timing"]["infer_ms"] > 0 and reply["server_timing"]["batch_size"] == 1
    assert "prev_total_ms" in client.infer(obs())["server_timing"]
    client.close()


def test_remote_matches_local_inference(server, policy):
    remote = RemotePolicy(PolicyClient(server.url)).infer(obs())
    local = policy.infer(obs())
    np.testing.assert_allclose(remote.actions, local.actions, atol=1e-5)
    assert remote.meta["round_trip_ms"] >= remote.meta["infer_ms"]


def test_healthz(server):
    port = server.server.port
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
        assert r.status == 200 and r.read() == b"ok\n"


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("hello", "expected a binary msgpack message"),
        (b"\xc1\xc1", "malformed msgpack"),
        (packb([1, 2]), "must be a map"),
        (packb({k: v for k, v in obs().items() if k != "task"}), "lacks keys ['task']"),
        (packb(obs(extra=1)), "unknown keys ['extra']"),
        (packb(obs(**{"observation.state": np.zeros(14, np.float32)})), "expected (15,)"),
        (packb(obs(**{"observation.state": np.zeros(15, np.int64)})), "must be a float array"),
        (packb(obs(**{"observation.state": np.full(15, np.nan, np.float32)})), "NaN"),
        (packb(obs(**{"observation.images.front": np.zeros((8, 8, 3), np.float32)})), "uint8"),
        (packb(obs(**{"observation.images.front": np.zeros((8, 8), np.uint8)})), "(H, W, 3)"),
        (
            packb(obs(**{"observation.images.front": np.zeros((4000, 1, 3), np.uint8)})),
            "sides must be",
        ),
        (packb(obs(task=7)), "task must be a string"),
        (packb(obs(task="x" * 2000)), "2000 characters"),
        (packb(obs(task="x" * 5000)), "a string of 5000 bytes; the limit is"),
        (
            msgpack.packb(
                {
                    "observation.state": {
                        b"__ndarray__": True,
                        b"data": b"",
                        b"dtype": "|O",
                        b"shape": [1],
                    }
                }
            ),
            "not allowed",
        ),
    ],
)
def test_bad_request_gets_error_and_connection_survives(server, message, expected):
    with connect(server.url, proxy=None) as ws:
        ws.recv()  # metadata
        ws.send(message)
        reply = ws.recv(timeout=10)
        assert isinstance(reply, str) and reply.startswith("error: ") and expected in reply
        ws.send(packb(obs()))  # the same connection keeps working
        assert unpackb(ws.recv(timeout=10))["actions"].shape == (8, 7)


def test_oversized_message_is_refused_and_server_keeps_serving(server):
    with connect(server.url, proxy=None, max_size=None) as ws:
        ws.recv()
        ws.send(b"\x00" * 3_000_000)
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(timeout=10)
        assert info.value.rcvd.code == 1009  # message too big
    client = PolicyClient(server.url)
    assert client.infer(obs())["actions"].shape == (8, 7)
    client.close()


def test_concurrent_clients_are_batched(server):
    sizes: list[int] = []
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            c = PolicyClient(server.url)
            for _ in range(8):
                sizes.append(c.infer(obs(task=f"client {i}"))["server_timing"]["batch_size"])
            c.close()
        except BaseException as e:  # surfaced below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors and len(sizes) == 48
    assert max(sizes) > 1  # requests that arrived while the model was busy shared a pass


def test_token_required_off_loopback(policy):
    with pytest.raises(ValueError, match="without --token"):
        PolicyServer(policy, "0.0.0.0", 0)
    PolicyServer(policy, "0.0.0.0", 0, token="s3cret")  # with a token it is allowed


def test_token_is_checked(policy):
    with ServerThread(PolicyServer(policy, "127.0.0.1", 0, token="s3cret")) as st:
        for bad in (None, "wrong"):
            with pytest.raises(PermissionError, match="refused the token"):
                PolicyClient(st.url, token=bad).connect()
        good = PolicyClient(st.url, token="s3cret")
        assert good.infer(obs())["actions"].shape == (8, 7)
        good.close()
        with urllib.request.urlopen(f"http://127.0.0.1:{st.server.port}/healthz", timeout=5) as r:
            assert r.status == 200  # health checks need no token


def test_plan_travels_with_the_chunk(tiny_checkpoint):
    planner = LocalPolicy.from_checkpoint(tiny_checkpoint, with_plan=True, device="cpu")
    with ServerThread(PolicyServer(planner, "127.0.0.1", 0)) as st:
        result = RemotePolicy(PolicyClient(st.url)).infer(obs())
    assert isinstance(result.plan, str)
    assert result.plan == planner.infer(obs()).plan  # greedy decoding: same text both ways


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(blob=st.binary(max_size=2048) | st.text(max_size=64))
def test_live_server_survives_fuzzed_messages(server, blob):
    with connect(server.url, proxy=None) as ws:
        ws.recv()
        ws.send(blob)
        reply = ws.recv(timeout=10)
        assert isinstance(reply, str) and reply.startswith("error: ")
    with urllib.request.urlopen(f"http://127.0.0.1:{server.server.port}/healthz", timeout=5) as r:
        assert r.status == 200


def test_client_limit(policy):
    with ServerThread(PolicyServer(policy, "127.0.0.1", 0, max_clients=1)) as st:
        first = PolicyClient(st.url)
        first.connect()
        with pytest.raises(PolicyUnavailable, match="503"):
            PolicyClient(st.url).connect()
        first.close()
        deadline = time.monotonic() + 10
        while st.server.clients and time.monotonic() < deadline:
            time.sleep(0.01)
        second = PolicyClient(st.url)  # the slot is free again
        assert second.infer(obs())["actions"].shape == (8, 7)
        second.close()
