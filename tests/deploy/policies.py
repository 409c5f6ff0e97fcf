"""The real tiny policy with one behaviour changed, for the server's failure paths."""

import threading
import time

import numpy as np

from embodied_mm.runtime.inference import ChunkResult, LocalPolicy


class ResetFails(LocalPolicy):
    """The real tiny policy whose ``reset`` raises, as a policy with a broken state would."""

    def reset(self) -> None:
        raise RuntimeError("plan cache corrupted")


class HugeActions(LocalPolicy):
    """The real policy, but its chunk in float64 and scaled past float32's range."""

    def infer_batch(self, frames):
        return [
            ChunkResult(r.actions.astype(np.float64) * 1e300) for r in super().infer_batch(frames)
        ]


class FailsOnTask(LocalPolicy):
    """The real policy, raising for one task text (a model bug on some input)."""

    def infer_batch(self, frames):
        if any(f["task"] == "explode" for f in frames):
            raise ValueError("bad token")
        return super().infer_batch(frames)


class Gated(LocalPolicy):
    """The real policy, holding each call until the test opens the gate."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.entered = threading.Event()
        self.gate = threading.Event()
        self.own_ms: list[float] = []

    def infer_batch(self, frames):
        t0 = time.perf_counter()
        self.entered.set()
        assert self.gate.wait(timeout=60)
        out = super().infer_batch(frames)
        self.own_ms.append((time.perf_counter() - t0) * 1e3)
        return out


def load(cls, checkpoint):
    return cls.from_checkpoint(checkpoint, device="cpu")
