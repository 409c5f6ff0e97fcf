"""Real clients for the policy-server tests: a request, and a robot that keeps requesting."""

import threading
import time

import numpy as np

from embodied_mm.deploy.client import PolicyClient


def obs(h=128, w=128, state_dim=15, **over):
    """One request for the tiny policy (cameras front and wrist, 15-D state)."""
    o = {
        "observation.images.front": np.zeros((h, w, 3), np.uint8),
        "observation.images.wrist": np.full((h, w, 3), 80, np.uint8),
        "observation.state": np.linspace(-1, 1, state_dim).astype(np.float32),
        "task": "pick up the cube",
    }
    o.update(over)
    return o


def wait_until(condition, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert condition()


class Robot:
    """A connected client sending requests back to back in a thread until stopped; a request
    without a reply within ``timeout_s`` is a failure (the loop's watchdog would have stopped
    the robot long before)."""

    def __init__(self, url: str, timeout_s: float = 10.0) -> None:
        self.client = PolicyClient(url, timeout_s=timeout_s)
        self.client.connect()
        self.served = 0
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                assert self.client.infer(obs())["actions"].shape == (8, 7)
                self.served += 1
            except BaseException as e:  # surfaced by wait_for and the test
                self.errors.append(e)
                return

    def wait_for(self, n: int, timeout_s: float = 60.0) -> None:
        """Until ``n`` requests in all were served; fails on a failed request."""
        wait_until(lambda: self.served >= n or bool(self.errors), timeout_s)
        assert not self.errors, self.errors
        assert self.served >= n

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        self.client.close()
