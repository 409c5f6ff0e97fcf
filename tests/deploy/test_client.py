"""The policy client's first connection: a server that is still starting is waited for."""

import threading
import time

import pytest

from embodied_mm.deploy.client import PolicyClient
from embodied_mm.deploy.server import PolicyServer, ServerThread
from embodied_mm.runtime.inference import LocalPolicy, PolicyUnavailable
from tests.deploy.server_process import free_port


def test_a_url_that_is_not_a_websocket_is_refused():
    with pytest.raises(
        ValueError, match=r"'http://127.0.0.1:8000' must start with ws:// or wss://"
    ):
        PolicyClient("http://127.0.0.1:8000")


def test_the_first_connection_waits_for_a_server_that_starts_late(tiny_checkpoint):
    policy = LocalPolicy.from_checkpoint(tiny_checkpoint, device="cpu")
    port = free_port()
    stop = threading.Event()

    def serve_later() -> None:
        time.sleep(1.0)  # the client starts first, as after `serve ... &` then `deploy`
        with ServerThread(PolicyServer(policy, "127.0.0.1", port)):
            stop.wait(60)

    server = threading.Thread(target=serve_later, daemon=True)
    server.start()
    said: list[str] = []
    client = PolicyClient(f"ws://127.0.0.1:{port}")
    try:
        meta = client.connect_waiting(30.0, said.append)
        assert meta["action_dim"] == 7
        assert said == [f"waiting for the policy server at ws://127.0.0.1:{port} (up to 30 s)"]
    finally:
        client.close()
        stop.set()
        server.join(timeout=30)


def test_waiting_for_a_server_that_never_comes_is_bounded():
    client = PolicyClient(f"ws://127.0.0.1:{free_port()}")
    t0 = time.monotonic()
    with pytest.raises(PolicyUnavailable, match=r"cannot connect .* \(waited 1 s\)"):
        client.connect_waiting(1.0)
    assert 1.0 <= time.monotonic() - t0 < 10.0
