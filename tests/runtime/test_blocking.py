"""Synchronous executors with a simulated policy latency: the arm holds while a chunk is
computed, and the chunk comes from the observation of the step that asked for it."""

import numpy as np
import pytest

from embodied_mm.runtime.blocking import SimulatedBlockingExecutor
from embodied_mm.runtime.chunking import make_executor
from embodied_mm.runtime.inference import PolicyUnavailable
from tests.runtime.test_chunking import RampSource, first, frame


def _play(ex, steps: int, start: int = 0) -> list[float | None]:
    return [first(ex.next_action(frame(t))) for t in range(start, start + steps)]


def test_open_loop_holds_for_the_latency_at_every_chunk():
    src = RampSource(k=4)
    ex = make_executor("open_loop", src, latency_steps=2)
    # asked at 0 (held 0, 1), played 2..5 from the observation of step 0; asked again at 6
    assert _play(ex, 10) == [None, None, 0, 1, 2, 3, None, None, 6, 7]
    assert src.log == ["infer 0", "infer 6"]
    # in steps since the observation of the chunk last played (held steps included)
    assert list(ex.chunk_ages) == [2, 3, 4, 5, 6, 7, 2, 3]


def test_ensemble_waits_at_every_step_and_lines_chunks_up_by_actions_played():
    src = RampSource(k=4)
    ex = make_executor("ensemble", src, latency_steps=1)
    out = _play(ex, 6)
    assert out[0::2] == [None, None, None]  # every action costs one held step
    assert src.log == ["infer 0", "infer 2", "infer 4"]
    # the second action: the first chunk's prediction for its 2nd action (1) and the new
    # chunk's first (2, from the observation of step 2), weighted exp(-0.01 i), oldest first
    w = np.exp(-0.01 * np.arange(2))
    assert out[3] == pytest.approx(float((w * [1.0, 2.0]).sum() / w.sum()))


def test_a_reset_while_waiting_starts_the_next_episode_clean():
    src = RampSource(k=4)
    ex = make_executor("open_loop", src, latency_steps=3)
    assert _play(ex, 2) == [None, None]  # the inference asked at step 0 has not answered
    ex.reset()
    assert _play(ex, 5, start=1000) == [None, None, None, 1000, 1001]
    assert src.log == ["reset", "infer 1000"]  # the old episode's request never ran


def test_a_failed_inference_is_asked_again_after_another_wait():
    class DownAtCall0(RampSource):
        def during(self, call):
            if call == 0:
                raise PolicyUnavailable("server down")

    ex = make_executor("open_loop", DownAtCall0(k=2), latency_steps=1)
    # fails at 1 (asked at 0), asks at 2, plays that observation's chunk from 3
    assert _play(ex, 5) == [None, None, None, 2, 3]
    assert ex.last_error is None


def test_latency_below_one_is_refused():
    with pytest.raises(ValueError, match="latency_steps must be >= 1"):
        SimulatedBlockingExecutor(make_executor("open_loop", RampSource()), 0)
