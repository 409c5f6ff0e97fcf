"""Clients that connect and never send cannot lock the others out of the policy server.

Real server (background event loop, real tiny policy), real websocket clients over loopback;
distinct client addresses are distinct loopback addresses (all of 127/8 is local on Linux).
"""

import asyncio
import socket

import pytest
from typer.testing import CliRunner
from websockets.asyncio.client import connect as async_connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from embodied_mm.cli.main import app
from embodied_mm.deploy.client import PolicyClient
from embodied_mm.deploy.server import IDLE_CLOSE_CODE, PolicyServer, ServerThread
from embodied_mm.deploy.wire import packb, unpackb
from embodied_mm.runtime.inference import LocalPolicy
from tests.deploy.clients import Robot, obs, wait_until
from tests.deploy.server_process import free_port, start_server


@pytest.fixture(scope="module")
def policy(tiny_checkpoint):
    return LocalPolicy.from_checkpoint(tiny_checkpoint, device="cpu")


def open_idle(url: str, source: str):
    """A websocket connection from ``source`` that reads the metadata and then sends nothing;
    returns the connection, or the HTTP status it was refused with."""
    try:
        ws = connect(url, proxy=None, source_address=(source, 0), open_timeout=10)
    except InvalidStatus as e:
        return e.response.status_code
    ws.recv(timeout=10)  # metadata
    return ws


def test_idle_flood_from_one_address_leaves_room_for_others(policy):
    server = PolicyServer(policy, "127.0.0.1", 0, max_clients=64, max_clients_per_address=16)
    with ServerThread(server) as st:
        robot = Robot(st.url)
        robot.wait_for(3)
        flood = [open_idle(st.url, "127.0.0.2") for _ in range(64)]
        accepted = [ws for ws in flood if not isinstance(ws, int)]
        refused = [code for code in flood if isinstance(code, int)]
        assert len(accepted) == 16 and refused == [503] * 48
        served_during_flood = robot.served
        # a new robot on another host gets in and is served, and the first one kept going
        newcomer = connect(st.url, proxy=None, source_address=("127.0.0.3", 0))
        newcomer.recv(timeout=10)
        newcomer.send(packb(obs()))
        assert unpackb(newcomer.recv(timeout=10))["actions"].shape == (8, 7)
        robot.wait_for(served_during_flood + 3)
        robot.stop()
        assert not robot.errors and robot.served >= served_during_flood + 3
        for ws in [*accepted, newcomer]:
            ws.close()


@pytest.mark.slow
def test_idle_connections_are_closed_and_their_slots_reused(policy):
    server = PolicyServer(policy, "127.0.0.1", 0, max_clients=64, idle_timeout_s=2.0)
    with ServerThread(server) as st:
        robot = Robot(st.url)  # busy, so never idle
        robot.wait_for(3)
        # 64 idle clients from 64 hosts fill every slot the robot left
        flood = [open_idle(st.url, f"127.0.1.{i}") for i in range(1, 65)]
        idle = [ws for ws in flood if not isinstance(ws, int)]
        assert len(idle) == 63 and flood[-1] == 503
        with pytest.raises(InvalidStatus) as full:
            connect(st.url, proxy=None, source_address=("127.0.2.1", 0))
        assert full.value.response.status_code == 503
        assert b"too many clients" in full.value.response.body
        served_before = robot.served
        # the server closes every idle one, saying why
        for ws in idle:
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=30)
            assert closed.value.rcvd.code == IDLE_CLOSE_CODE
            assert "idle" in closed.value.rcvd.reason
        # the robot was served all along, and a newcomer gets a slot once the closes are done
        wait_until(lambda: st.server.clients == 1)
        late = PolicyClient(st.url)
        assert late.infer(obs())["actions"].shape == (8, 7)
        late.close()
        robot.wait_for(served_before + 3)
        robot.stop()
        assert not robot.errors and robot.served >= served_before + 3
        assert st.server.idle_closed >= 63


def test_client_reconnects_by_itself_after_an_idle_close(policy):
    with ServerThread(PolicyServer(policy, "127.0.0.1", 0, idle_timeout_s=0.5)) as st:
        client = PolicyClient(st.url)
        assert client.infer(obs())["actions"].shape == (8, 7)
        wait_until(lambda: st.server.clients == 0)  # closed, and the close handshake done
        assert st.server.idle_closed == 1
        # the client's connection has seen the close: the next call re-opens it
        assert client.infer(obs())["actions"].shape == (8, 7)
        assert client.connects == 2
        client.close()


def test_a_silent_tcp_connection_is_dropped_after_the_handshake_timeout(policy):
    with ServerThread(PolicyServer(policy, "127.0.0.1", 0, handshake_timeout_s=1.0)) as st:
        silent = [socket.create_connection(("127.0.0.1", st.server.port)) for _ in range(20)]
        client = PolicyClient(st.url)
        assert client.infer(obs())["actions"].shape == (8, 7)  # served meanwhile
        for s in silent:
            s.settimeout(30)
            assert s.recv(1) == b""  # the server closed it without a word
            s.close()
        client.close()


def test_concurrent_handshakes_never_exceed_max_clients(policy):
    server = PolicyServer(policy, "127.0.0.1", 0, max_clients=5, max_clients_per_address=100)

    async def storm(url: str) -> list:
        async def one():
            try:
                ws = await async_connect(url, proxy=None, open_timeout=30)
            except InvalidStatus as e:
                return e.response.status_code
            await ws.recv()
            return ws

        results = await asyncio.gather(*(one() for _ in range(40)))
        most = server.clients
        for ws in results:
            if not isinstance(ws, int):
                await ws.close()
        return [*results, most]

    with ServerThread(server) as st:
        *results, most_open = asyncio.run(storm(st.url))
        accepted = [r for r in results if not isinstance(r, int)]
        assert len(accepted) == 5 and most_open == 5
        assert sorted({r for r in results if isinstance(r, int)}) == [503]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"max_clients": 0}, "max_clients must be at least 1"),
        ({"max_clients_per_address": 0}, "max_clients_per_address must be at least 1"),
        ({"idle_timeout_s": 0}, "idle_timeout_s must be a positive"),
        ({"handshake_timeout_s": -1}, "handshake_timeout_s must be a positive"),
    ],
)
def test_bad_limits_are_refused(policy, kwargs, match):
    with pytest.raises(ValueError, match=match):
        PolicyServer(policy, "127.0.0.1", 0, **kwargs)


@pytest.mark.slow
def test_serve_cli_applies_the_limits(tiny_checkpoint):
    port = free_port()
    server = start_server(
        tiny_checkpoint, port, "--max-clients-per-address", "1", "--idle-timeout", "1"
    )
    try:
        url = f"ws://127.0.0.1:{port}"
        first = open_idle(url, "127.0.0.1")
        assert open_idle(url, "127.0.0.1") == 503  # one per address
        other = open_idle(url, "127.0.0.2")  # another host still gets in
        for ws in (first, other):
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=30)
            assert closed.value.rcvd.code == IDLE_CLOSE_CODE
    finally:
        server.terminate()
        server.wait(timeout=30)
    log = server.stderr.read()
    assert "refused 127.0.0.1" in log and "per address" in log and "Traceback" not in log


def test_serve_cli_refuses_a_bad_limit(tiny_checkpoint):
    result = CliRunner().invoke(
        app, ["serve", "--checkpoint", str(tiny_checkpoint), "--idle-timeout", "0"]
    )
    assert result.exit_code == 2 and "idle_timeout_s must be a positive" in result.output
