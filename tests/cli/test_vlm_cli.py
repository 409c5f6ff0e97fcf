"""Tiny ``vlm`` recipes through the commands a user runs: train → eval, and serve."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.deploy.clients import obs
from tests.deploy.server_process import free_port, start_server
from tests.train.conftest import write_dataset

CLI = [sys.executable, "-m", "embodied_mm.cli.main"]
ENV = {**os.environ, "MUJOCO_GL": "egl", "OMP_NUM_THREADS": "1"}


def _run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    proc = subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout, env=ENV)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.mark.slow
def test_train_then_eval_a_tiny_vlm_policy(tmp_path):
    dataset = write_dataset(tmp_path / "ds", [12, 10])
    _run("train", "--recipe", "vlm-paligemma-chunk", "--dataset", str(dataset), "--steps", "2",
         "--batch-size", "4", "--save-every", "2", "--out", str(tmp_path / "run"))  # fmt: skip
    policy = tmp_path / "run" / "checkpoints" / "last" / "policy"
    assert (
        json.loads((policy / "config.json").read_text())["config"]["vlm"]["family"] == "paligemma"
    )

    _run("eval", "--checkpoint", str(policy), "--env", "embodied_mm/ReachObject-v0",
         "--episodes", "1", "--out", str(tmp_path / "eval"))  # fmt: skip
    info = json.loads((tmp_path / "eval" / "eval_info.json").read_text())
    assert "embodied_mm/ReachObject-v0" in json.dumps(info)


@pytest.mark.slow
def test_serve_a_tiny_vlm_policy(tmp_path):
    from embodied_mm.deploy.client import PolicyClient
    from embodied_mm.policies import make_policy

    policy = tmp_path / "policy"
    make_policy("vlm-qwen2vl-chunk", device="cpu").save_pretrained(policy)
    port = free_port()
    server = start_server(policy, port)
    try:
        client = PolicyClient(f"ws://127.0.0.1:{port}", timeout_s=30.0)
        reply = client.infer(obs())
        client.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
    actions = np.asarray(reply["actions"])
    assert actions.shape == (8, 7) and np.isfinite(actions).all()
