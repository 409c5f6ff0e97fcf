"""The server's log: one line per event worth an operator's attention, tracebacks at DEBUG."""

import logging
import urllib.request

from websockets.sync.client import connect

from embodied_mm.deploy.client import PolicyClient
from embodied_mm.deploy.server import PolicyServer, ServerThread
from embodied_mm.deploy.wire import packb
from tests.deploy.clients import obs, wait_until
from tests.deploy.policies import Gated, load

ROUTINE = (
    "connection open",
    "connection closed",
    "HTTP response sent",
    "connected",
    "disconnected",
)


def test_client_gone_mid_request_is_one_line_and_routine_events_are_debug(tiny_checkpoint, caplog):
    caplog.set_level(logging.DEBUG)
    policy = load(Gated, tiny_checkpoint)
    with ServerThread(PolicyServer(policy, "127.0.0.1", 0)) as st:
        # a client sends a request and leaves while the model is still on it
        ws = connect(st.url, proxy=None)
        ws.recv()
        host, port = ws.local_address[:2]
        ws.send(packb(obs()))
        assert policy.entered.wait(timeout=60)
        ws.close()
        policy.gate.set()
        wait_until(lambda: st.server.clients == 0)
        # routine traffic: health checks, a client that connects, is served and leaves
        for _ in range(3):
            with urllib.request.urlopen(f"http://127.0.0.1:{st.server.port}/healthz") as r:
                assert r.status == 200
        client = PolicyClient(st.url)
        assert client.infer(obs())["actions"].shape == (8, 7)
        client.close()
        wait_until(lambda: st.server.clients == 0)

    ours = [r for r in caplog.records if r.name.startswith(("websockets", "embodied_mm.deploy"))]
    loud = [r for r in ours if r.levelno >= logging.INFO]
    assert [r for r in loud if r.exc_info] == []  # no traceback above DEBUG
    assert [r.getMessage() for r in loud if "left before its reply" in r.getMessage()] == [
        f"client {host}:{port} left before its reply was sent"
    ]
    assert [r.getMessage() for r in loud if any(w in r.getMessage() for w in ROUTINE)] == []
    debug = [r for r in ours if r.levelno == logging.DEBUG]
    assert any("connection open" in r.getMessage() for r in debug)  # demoted, not dropped
    assert any(r.exc_info for r in debug)  # the send failure's traceback, for debugging
