"""The exported policy in the runtime: a sim episode through the controller loop, and
``serve --backend onnx`` end to end with the existing client."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from embodied_mm.deploy.client import PolicyClient, RemotePolicy
from embodied_mm.deploy.session import DeployConfig, run_episodes
from embodied_mm.export.ort_policy import OrtPolicy
from embodied_mm.runtime.adapters.sim import SimRobot
from embodied_mm.runtime.inference import LocalPolicy
from tests.deploy.server_process import free_port, start_server
from tests.export.conftest import random_obs


def test_sim_episode_through_the_controller_loop(exported_chunk):
    source = LocalPolicy(OrtPolicy(exported_chunk.export))
    robot = SimRobot("reach", engine="mujoco", seed=0)
    calls = []
    original = source.infer_batch
    source.infer_batch = lambda frames: calls.append(len(frames)) or original(frames)
    cfg = DeployConfig(mode="open_loop", hz=50.0, max_steps=20)
    with robot:
        (result,) = run_episodes(robot, source, source.metadata(), cfg)
    assert result.stop_reason in ("max_steps", "episode_done"), result.error
    assert result.steps == 20 or result.stop_reason == "episode_done"
    assert len(calls) >= 2  # 20 steps of 8-action chunks: the policy ran more than once


@pytest.mark.slow
def test_deploy_cli_backend_onnx(exported_chunk, tmp_path):
    out = tmp_path / "run"
    run = subprocess.run(
        [sys.executable, "-m", "embodied_mm.cli.main", "deploy", "--robot", "sim:reach",
         "--checkpoint", str(exported_chunk.export), "--backend", "onnx", "--hz", "50",
         "--steps", "15", "--mode", "open_loop", "--out", str(out)],
        capture_output=True, text=True, timeout=240,
        env={**os.environ, "MUJOCO_GL": "egl", "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary[0]["stop_reason"] in ("max_steps", "episode_done")


@pytest.mark.slow
def test_serve_backend_onnx_with_the_existing_client(exported_chunk):
    port = free_port()
    server = start_server(exported_chunk.export, port, "--backend", "onnx")
    client = PolicyClient(f"ws://127.0.0.1:{port}", timeout_s=10.0)
    try:
        meta = client.connect()
        assert meta["cameras"] == ["front", "wrist"] and meta["chunk_size"] == 8
        obs = random_obs(exported_chunk.policy.config, 1, seed=5, tasks=["reach the cube"])
        frame = {k: v[0] for k, v in obs.items()}  # one unbatched frame
        result = RemotePolicy(client).infer(frame)
    finally:
        client.close()
        server.terminate()
        server.wait(timeout=30)
    local = OrtPolicy(exported_chunk.export).predict_chunk(obs)[0]  # (K, D)
    np.testing.assert_allclose(result.actions, local, rtol=0, atol=1e-5)


def test_serve_refuses_a_pytorch_checkpoint_as_onnx(exported_chunk):
    run = subprocess.run(
        [sys.executable, "-m", "embodied_mm.cli.main", "serve", "--checkpoint",
         str(exported_chunk.checkpoint), "--backend", "onnx", "--port", "0"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 2
    assert "not an ONNX export: manifest.json is missing" in run.stderr
