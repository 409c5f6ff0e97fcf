"""``embodied-mm eval`` / ``rollout`` / ``demo`` execution options, as the real command."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

CLI = [sys.executable, "-m", "embodied_mm.cli.main"]
ENV = {**os.environ, "MUJOCO_GL": "egl"}
EVAL = ["eval", "--checkpoint", "no-such-dir", "--env", "embodied_mm/ReachObject-v0"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            [*EVAL, "--mode", "fast"],
            "unknown execution mode 'fast'; known: open_loop, ensemble, async",
        ),
        ([*EVAL, "--mode", "async", "--latency-steps", "-2"], "latency_steps must be >= 0, got -2"),
        (
            [*EVAL, "--mode", "ensemble", "--n-action-steps", "2"],
            "n_action_steps applies to mode open_loop",
        ),
        ([*EVAL, "--hz", "0"], "hz must be a finite number > 0, got 0.0"),
        (
            ["rollout", "--env", "embodied_mm/ReachObject-v0", "--mode", "fast"],
            "unknown execution mode",
        ),
        (["demo", "--mode", "async", "--latency-steps", "-1"], "latency_steps must be >= 0"),
        (
            ["eval", "--checkpoint", "no-such-dir", "--env", "nope"],
            "unknown env 'nope'; known: embodied_mm/PickLift-v0",
        ),
        ([*EVAL, "--episodes", "0"], "--episodes must be >= 1, got 0"),
        ([*EVAL, "--episodes", "-1"], "--episodes must be >= 1, got -1"),
        ([*EVAL, "--num-envs", "0"], "--num-envs must be >= 1, got 0"),
        (EVAL, "policy directory no-such-dir does not exist"),
        (["demo", "--env", "pick_lift"], "unknown env 'pick_lift'; known: embodied_mm/PickLift-v0"),
    ],
)
def test_bad_execution_options_are_one_line_errors(args, message):
    """Checked before any policy loads or env starts (the checkpoint here does not exist)."""
    out = subprocess.run([*CLI, *args], capture_output=True, text=True, env=ENV, timeout=120)
    assert out.returncode == 2
    assert out.stderr.strip().startswith("error: ") and message in out.stderr
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1
