"""Exact resume: a run killed with SIGKILL and resumed reaches the same weights, bitwise."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from embodied_mm.model.pretrained import WEIGHTS_FILE

STEPS = 8


def _train_cmd(dataset: Path, out: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "embodied_mm.cli.main", "train",
        "--recipe", "vla-flow", "--dataset", str(dataset), "--out", str(out),
        "--steps", str(STEPS), "--batch-size", "4", "--save-every", "2", "--keep-last", "2",
        "--log-every", "1", "--warmup-steps", "2", *extra,
    ]  # fmt: skip


def _final_weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / "checkpoints" / f"step-{STEPS:07d}" / "policy" / WEIGHTS_FILE))


@pytest.mark.slow
def test_sigkill_then_resume_matches_uninterrupted_run(tiny_dataset, tmp_path):
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    straight = tmp_path / "straight"
    subprocess.run(_train_cmd(tiny_dataset, straight), check=True, env=env, capture_output=True)

    killed = tmp_path / "killed"
    proc = subprocess.Popen(_train_cmd(tiny_dataset, killed), env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.time() + 120
    while not (killed / "checkpoints" / "step-0000004").exists():
        assert proc.poll() is None, "training ended before it could be killed"
        assert time.time() < deadline
        time.sleep(0.05)
    # let it log past the checkpoint, so the metrics hold rows the resumed run trains again
    while '"step": 5' not in (killed / "metrics.jsonl").read_text():
        assert proc.poll() is None, "training ended before it could be killed"
        assert time.time() < deadline
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (killed / "checkpoints" / f"step-{STEPS:07d}").exists()

    subprocess.run(_train_cmd(tiny_dataset, killed, "--resume"), check=True, env=env,
                   capture_output=True)  # fmt: skip
    a, b = _final_weights(straight), _final_weights(killed)
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name
    # rows the killed run logged after its last checkpoint were replaced, not repeated
    rows = [json.loads(x) for x in (killed / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(1, STEPS + 1))
