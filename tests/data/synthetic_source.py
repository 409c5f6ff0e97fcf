"""A :class:`DemoSource` of synthetic episodes, for recorder tests that need no simulator.

Seeds ≡ 3 (mod 4) "fail", so that the keep-successes-only rule is exercised. ``step_sleep``
makes an episode take real time, so a test can kill the recorder in the middle of one.
"""

from __future__ import annotations

import functools
import time

from embodied_mm.data.episode import Episode
from tests.data.conftest import synthetic_episode


class SyntheticSource:
    fps = 10
    robot_type = "synthetic"

    def __init__(self, step_sleep: float = 0.0) -> None:
        self.step_sleep = step_sleep

    def episode(self, seed: int) -> Episode:
        length = 6 + seed % 5
        time.sleep(self.step_sleep * length)
        ep = synthetic_episode(length, seed, task=f"task {seed % 2}")
        ep.success = seed % 4 != 3
        return ep

    def close(self) -> None:
        pass


def synthetic_factory(step_sleep: float = 0.0):
    return functools.partial(SyntheticSource, step_sleep)
