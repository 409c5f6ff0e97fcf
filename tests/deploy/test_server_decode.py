"""Hostile messages get an error reply while the other clients keep being served."""

import numpy as np
import pytest
from websockets.sync.client import connect

from embodied_mm.deploy.wire import packb
from tests.deploy.clients import Robot, obs
from tests.deploy.server_process import free_port, start_server

N = 15_000_000


def _nested(fanout: int, depth: int) -> bytes:
    """A full tree of arrays, ``fanout`` children each, empty arrays at the leaves."""
    node = b"\x90"
    for _ in range(depth):
        node = bytes([0x90 | fanout]) + node * fanout
    return node


HOSTILE = {
    # the message: 15 MB of empty containers
    "empty-containers": (
        b"\xdd" + N.to_bytes(4, "big") + b"\x90" * N,
        "an array of 15000000 elements",
    ),
    # many containers in a tree whose arrays each stay under the per-array limit
    "tree": (_nested(15, 6), "maps and arrays"),
    "deep": (b"\x91" * 100_000 + b"\x90", "malformed msgpack message"),
    # a well-formed 15 MB request whose image no policy takes (decoded off the event loop)
    "huge-image": (
        packb(obs(**{"observation.images.front": np.zeros((2500, 2000, 3), np.uint8)})),
        "sides must be 1..1024",
    ),
}


@pytest.fixture(scope="module")
def url(tiny_checkpoint):
    """``embodied-mm serve`` in its own process (16 MiB messages), as deployed: in-process,
    a decode holding the GIL would stall the test's clients too, whatever the server did."""
    port = free_port()
    server = start_server(tiny_checkpoint, port)
    yield f"ws://127.0.0.1:{port}"
    server.terminate()
    server.wait(timeout=30)


@pytest.mark.slow
@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_message_is_refused_while_others_are_served(url, name):
    blob, expected = HOSTILE[name]
    # the message froze the old server for 10-15 s here; 3 s is the deploy
    # watchdog's 1 s stop with room for a loaded machine, and 1000x what a request needs
    robot = Robot(url, timeout_s=3.0)
    robot.wait_for(2)
    with connect(url, proxy=None, max_size=None) as attacker:
        attacker.recv()
        for _ in range(3):
            before = robot.served
            attacker.send(blob)
            reply = attacker.recv(timeout=60)
            robot.wait_for(before + 2)  # the robot's requests kept completing
            assert isinstance(reply, str) and reply.startswith("error: ") and expected in reply
        attacker.send(packb(obs()))  # and the attacker's connection still works
        assert not isinstance(attacker.recv(timeout=60), str)
    robot.stop()
    assert not robot.errors
