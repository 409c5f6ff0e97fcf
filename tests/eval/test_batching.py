"""The step batcher: each env's executor decides when to infer; one call answers a step."""

import numpy as np
import pytest

from embodied_mm.eval.batching import StepBatcher
from embodied_mm.features import OBS_STATE
from embodied_mm.runtime.chunking import OpenLoopExecutor, TemporalEnsembleExecutor
from embodied_mm.runtime.inference import ChunkResult


class BatchRamp:
    """A batched policy predicting "the action at step t is t + 100 env" (state = [t, env]);
    :attr:`calls` lists the envs of every ``infer_batch`` call."""

    def __init__(self, k: int = 8, fail: bool = False) -> None:
        self.k, self.fail = k, fail
        self.calls: list[list[int]] = []
        self.resets = 0

    def infer_batch(self, frames):
        self.calls.append([int(f[OBS_STATE][1]) for f in frames])
        if self.fail:
            raise RuntimeError("model crashed")
        out = []
        for f in frames:
            t, env = f[OBS_STATE]
            out.append(ChunkResult(np.arange(t, t + self.k, dtype=np.float32)[:, None] + 100 * env))
        return out

    def reset(self):
        self.resets += 1


def frame(t: int, env: int):
    return {OBS_STATE: np.array([t, env], np.float32)}


def run(batcher, executors, steps):
    played = {i: [] for i in executors}
    for t in range(steps):
        out = batcher.run_step(
            {
                i: (lambda i=i, ex=ex, t=t: ex.next_action(frame(t, i)))
                for i, ex in executors.items()
            }
        )
        for i, a in out.items():
            played[i].append(float(a[0]))
    return played


def test_each_executor_decides_and_one_call_answers_a_step():
    policy = BatchRamp()
    batcher = StepBatcher(policy, 3)
    executors = {
        0: OpenLoopExecutor(batcher.source(0), n_action_steps=2),  # infers at 0, 2, 4, 6
        1: OpenLoopExecutor(batcher.source(1), n_action_steps=3),  # infers at 0, 3, 6
        2: TemporalEnsembleExecutor(batcher.source(2)),  # infers every step
    }
    try:
        for ex in executors.values():
            ex.reset()
        played = run(batcher, executors, 7)
    finally:
        batcher.close()
    assert policy.resets == 3
    assert policy.calls == [[0, 1, 2], [2], [0, 2], [1, 2], [0, 2], [2], [0, 1, 2]]
    assert batcher.batch_sizes == [3, 1, 2, 2, 2, 1, 3]
    assert played[0] == [0, 1, 2, 3, 4, 5, 6]
    assert played[1] == [100, 101, 102, 103, 104, 105, 106]
    assert played[2] == pytest.approx([200, 201, 202, 203, 204, 205, 206])


def test_only_the_envs_given_take_part():
    """An env whose episode ended is left out of the step (and of the batch)."""
    policy = BatchRamp(k=1)
    batcher = StepBatcher(policy, 2)
    executors = {i: OpenLoopExecutor(batcher.source(i)) for i in range(2)}
    try:
        run(batcher, executors, 2)
        run(batcher, {1: executors[1]}, 2)
    finally:
        batcher.close()
    assert policy.calls == [[0, 1], [0, 1], [1], [1]]


def test_a_failing_batch_fails_every_asker():
    batcher = StepBatcher(BatchRamp(fail=True), 2)
    executors = {i: OpenLoopExecutor(batcher.source(i)) for i in range(2)}
    try:
        with pytest.raises(RuntimeError, match="model crashed"):
            run(batcher, executors, 1)
    finally:
        batcher.close()


def test_source_index_is_checked():
    batcher = StepBatcher(BatchRamp(), 2)
    try:
        with pytest.raises(ValueError, match=r"env 2 is outside \[0, 2\)"):
            batcher.source(2)
    finally:
        batcher.close()
    with pytest.raises(ValueError, match="num_envs must be >= 1"):
        StepBatcher(BatchRamp(), 0)
