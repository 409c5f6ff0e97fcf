"""End to end over loopback: the policy server and the robot in separate processes."""

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from embodied_mm.deploy.client import PolicyClient, RemotePolicy
from embodied_mm.deploy.session import DeployConfig, run_episodes
from embodied_mm.runtime.adapters.sim import SimRobot
from tests.deploy.server_process import free_port, start_server

pytestmark = pytest.mark.slow


def test_deploy_cli_completes_an_episode_against_served_policy(tiny_checkpoint, tmp_path):
    port = free_port()
    server = start_server(tiny_checkpoint, port)
    try:
        out = tmp_path / "run"
        robot = subprocess.run(
            [sys.executable, "-m", "embodied_mm.cli.main", "deploy", "--robot", "sim:reach",
             "--server", f"ws://127.0.0.1:{port}", "--hz", "50", "--steps", "200",
             "--mode", "async", "--out", str(out)],
            capture_output=True, text=True, timeout=240,
            env={**os.environ, "MUJOCO_GL": "egl", "OMP_NUM_THREADS": "1"},
        )  # fmt: skip
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert robot.returncode == 0, robot.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    steps = summary[0]["steps"]
    assert summary[0]["stop_reason"] == "episode_done" and 0 < steps <= 60  # reach: 60 at most
    lines = (out / "episode_000" / "run.jsonl").read_text().splitlines()
    assert len(lines) == steps + 1 and "summary" in json.loads(lines[-1])
    assert (out / "episode_000" / "front.mp4").stat().st_size > 0
    assert "step" in robot.stderr  # the live status line


def test_server_killed_mid_episode_robot_holds_stops_then_reconnects(tiny_checkpoint):
    port = free_port()
    server = start_server(tiny_checkpoint, port)
    client = PolicyClient(f"ws://127.0.0.1:{port}", timeout_s=2.0, connect_timeout_s=0.5)
    source = RemotePolicy(client)
    robot = SimRobot("pick_lift", engine="mujoco", seed=0)
    sent: list[np.ndarray] = []
    killed_at: list[int] = []
    try:
        with robot:
            original = robot.send_action
            robot.send_action = lambda a: (sent.append(np.array(a)), original(a))[1]

            def kill_at_step_10(step, loop):
                if step == 10:
                    server.send_signal(signal.SIGKILL)
                    server.wait(timeout=30)
                    killed_at.append(len(sent))

            cfg = DeployConfig(mode="async", hz=20.0, max_steps=200, refill_at=4)
            meta = client.connect()
            (first,) = run_episodes(robot, source, meta, cfg, on_step=kill_at_step_10)
            assert first.stop_reason == "watchdog_stop"
            assert first.interventions["watchdog_hold"] >= 1
            assert first.interventions["watchdog_stop"] == 1
            # after the queue ran dry, every command was a hold: zero motion, gripper unchanged
            holds = sent[killed_at[0] :]
            tail = [a for a in holds if not np.any(a[:6])]
            assert len(tail) >= first.interventions["watchdog_hold"]
            assert np.all(sent[-1][:6] == 0)

            # the server comes back on the same port; the same client reconnects by itself
            server = start_server(tiny_checkpoint, port)
            cfg2 = DeployConfig(mode="async", hz=20.0, max_steps=15)
            (second,) = run_episodes(robot, source, meta, cfg2)
            assert second.stop_reason in ("max_steps", "episode_done")
            assert "watchdog_stop" not in second.interventions
            assert client.connects == 2
    finally:
        client.close()
        if server.poll() is None:
            server.terminate()
            server.wait(timeout=30)
