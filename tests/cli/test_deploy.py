"""The serve / deploy / calibrate commands as a user runs them (subprocesses)."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from embodied_mm.runtime.dynamixel.calibration import Calibration, get_profile
from embodied_mm.runtime.dynamixel.emulator import MotorBusEmulator
from tests.deploy.server_process import free_port, start_server
from tests.runtime import steady_arm

CLI = [sys.executable, "-m", "embodied_mm.cli.main"]


def test_calibrate_writes_file_from_emulated_arm(tmp_path):
    profile = get_profile("koch")
    ids = [j.motor_id for j in profile.joints]
    out = tmp_path / "koch.json"
    with MotorBusEmulator(ids) as emu:
        emu.set_positions({i: 2000 + i for i in ids})
        proc = subprocess.Popen(
            [*CLI, "calibrate", "--port", emu.port, "--profile", "koch", "--out", str(out)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            assert "zero pose" in proc.stdout.readline()
            proc.stdin.write("\n")
            proc.stdin.flush()
            assert "full range" in proc.stdout.readline()
            # the user swings the elbow (id 3) ±0.3 rad around zero while the tool samples
            for ticks in (2003 - 196, 2003 + 196):
                emu.set_positions({3: ticks})
                time.sleep(0.4)
            proc.stdin.write("\n")
            proc.stdin.flush()
            stdout, stderr = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == 0, stderr
        assert not any(m.torque for m in emu.motors.values())  # calibrated by hand, torque off
    cal = Calibration.load(out)
    assert [j.offset_ticks for j in cal.joints] == [2000 + i for i in ids]
    elbow = cal.joints[2]
    assert elbow.min_rad == pytest.approx(-0.3, abs=0.01) and elbow.max_rad == pytest.approx(
        0.3, abs=0.01
    )
    assert "wrote" in stdout


def test_calibrate_reports_a_missing_port(tmp_path):
    r = subprocess.run(
        [*CLI, "calibrate", "--port", str(tmp_path / "ttyNONE"), "--out", str(tmp_path / "c.json")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert r.returncode == 2 and "cannot open" in r.stderr


def test_deploy_needs_exactly_one_policy_source():
    r = subprocess.run(
        [*CLI, "deploy", "--robot", "sim:reach"], capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 2 and "exactly one of --server or --checkpoint" in r.stderr


def test_deploy_refuses_a_server_url_that_is_not_a_websocket():
    r = subprocess.run(
        [*CLI, "deploy", "--robot", "sim:reach", "--server", "http://127.0.0.1:8000"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines() == [
        "error: policy server URL 'http://127.0.0.1:8000' must start with ws:// or wss://"
    ]


def test_serve_refuses_a_port_out_of_range_or_in_use(tmp_path):
    def serve(port: int) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*CLI, "serve", "--checkpoint", str(tmp_path), "--port", str(port)],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip

    r = serve(99999)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert (
        r.stderr.strip().splitlines()[-1]
        == "error: --port 99999 is outside 0..65535 (0 picks a free port)"
    )
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        r = serve(port)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1] == f"error: port {port} on 127.0.0.1 is already in use"


def test_serve_refuses_public_bind_without_token(tmp_path):
    r = subprocess.run(
        [*CLI, "serve", "--checkpoint", str(tmp_path), "--host", "0.0.0.0"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert r.returncode == 2 and "without --token" in r.stderr


@pytest.mark.slow
def test_deploy_in_process_and_sigint_is_an_estop(tmp_path):
    from embodied_mm.policies import make_policy

    ckpt = tmp_path / "ckpt"
    make_policy("vla-chunk", size="tiny").save_pretrained(ckpt)
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [*CLI, "deploy", "--robot", "sim:pick_lift", "--checkpoint", str(ckpt), "--steps", "100000",
         "--mode", "ensemble", "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "MUJOCO_GL": "egl", "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    try:
        log = out / "episode_000" / "run.jsonl"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and (not log.exists() or log.stat().st_size < 2000):
            time.sleep(0.2)
        proc.send_signal(2)  # SIGINT, as Ctrl-C
        stdout, stderr = proc.communicate(timeout=60)
        assert "episode 0: estop" in stdout
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, stderr[-2000:]
    (summary,) = json.loads((out / "summary.json").read_text())
    assert summary["stop_reason"] == "estop" and summary["interventions"]["estop"] == 1
    last = json.loads(log.read_text().splitlines()[-2])  # the line before the summary
    assert last["interventions"] == ["estop"] and last["action"][:6] == [0.0] * 6


@pytest.mark.slow
def test_deploy_dynamixel_arm_with_camera(tmp_path):
    """`deploy --robot dynamixel:<pty>` with a calibration file and a video-file camera; with
    --release-on-exit the arm is let go at the end."""
    import cv2

    from embodied_mm.policies import make_policy
    from embodied_mm.runtime.dynamixel.calibration import JointCalibration

    ckpt = tmp_path / "ckpt"
    make_policy(
        "vla-chunk", size="tiny", cameras=["front"], state_dim=6, action_dim=6
    ).save_pretrained(ckpt)
    video = tmp_path / "front.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 30, (160, 120))
    for i in range(60):
        writer.write(np.full((120, 160, 3), 4 * i, np.uint8))
    writer.release()
    cal = tmp_path / "koch.json"
    Calibration(
        "koch", [JointCalibration(f"j{i}", i, 2048, 1, -0.5, 0.5) for i in range(1, 7)]
    ).save(cal)
    out = tmp_path / "run"
    with MotorBusEmulator(list(range(1, 7))) as emu:
        r = subprocess.run(
            [*CLI, "deploy", "--robot", f"dynamixel:{emu.port}", "--calibration", str(cal),
             "--camera", f"front={video}", "--checkpoint", str(ckpt), "--task", "wave",
             "--steps", "20", "--hz", "15", "--mode", "async", "--max-obs-age-s", "1.0",
             "--out", str(out), "--release-on-exit"],
            capture_output=True, text=True, timeout=240, env={**os.environ, "OMP_NUM_THREADS": "1"},
        )  # fmt: skip
        goals = [m.goal for m in emu.motors.values()]
        torque = [m.torque for m in emu.motors.values()]
    assert r.returncode == 0, r.stderr[-2000:]
    (summary,) = json.loads((out / "summary.json").read_text())
    assert summary["stop_reason"] == "max_steps" and summary["steps"] == 20
    assert goals != [2048] * 6 and all(
        abs(g - 2048) <= 327 for g in goals
    )  # moved, within ±0.5 rad
    assert not any(torque) and "torque released" in r.stdout  # asked for: torque off at exit
    cap = cv2.VideoCapture(str(out / "episode_000" / "front.mp4"))
    assert (cap.get(cv2.CAP_PROP_FRAME_HEIGHT), cap.get(cv2.CAP_PROP_FRAME_WIDTH)) == (128, 128)
    cap.release()


@pytest.fixture(scope="module")
def steady_checkpoint(tmp_path_factory):
    """A saved policy for the steady arm rig: every action is ``steady_arm.TARGET``."""
    path = tmp_path_factory.mktemp("steady")
    steady_arm.steady_policy().save_pretrained(path)
    return path


def wait_for_steps(log, proc, n, timeout_s=180.0):
    """Until the run log holds ``n`` steps (the file is written in buffered blocks)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and proc.poll() is None:
        if log.exists() and log.read_text().count("\n") >= n:
            return
        time.sleep(0.2)
    raise AssertionError(f"deploy did not reach {n} steps (exit code {proc.poll()})")


@pytest.mark.slow
@pytest.mark.parametrize("stop", ["estop", "watchdog_stop", "bus_fault"])
def test_every_stop_leaves_the_arm_holding_with_torque_on(stop, steady_checkpoint, tmp_path):
    """`deploy` on the emulated arm, its gripper closed on an object, ended by Ctrl-C, by the
    policy server dying, or by a motor dropping off the bus: afterwards every motor is still
    powered, the arm is held where it is and the gripper still squeezes (goal = its target,
    past the object)."""
    clip = steady_arm.write_clip(tmp_path / "front.mp4")
    cal = tmp_path / "koch.json"
    steady_arm.calibration().save(cal)
    out = tmp_path / "run"
    server = None
    if stop == "watchdog_stop":
        port = free_port()
        server = start_server(steady_checkpoint, port)
        policy = ["--server", f"ws://127.0.0.1:{port}"]
    else:
        policy = ["--checkpoint", str(steady_checkpoint)]
    stdout_path, stderr_path = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    try:
        with (
            MotorBusEmulator(steady_arm.IDS) as emu,
            stdout_path.open("w") as stdout_file,
            stderr_path.open("w") as stderr_file,
        ):
            emu.block(6, steady_arm.ticks(steady_arm.OBJECT_RAD))
            proc = subprocess.Popen(
                [*CLI, "deploy", "--robot", f"dynamixel:{emu.port}", "--calibration", str(cal),
                 "--camera", f"front={clip}", *policy, "--task", "grasp", "--steps", "100000",
                 "--hz", "15", "--max-obs-age-s", "1.0", "--out", str(out)],
                stdout=stdout_file, stderr=stderr_file, text=True,
                env={**os.environ, "OMP_NUM_THREADS": "1"},
            )  # fmt: skip
            try:
                wait_for_steps(out / "episode_000" / "run.jsonl", proc, 10)  # gripper closed
                if stop == "estop":
                    proc.send_signal(signal.SIGINT)
                elif stop == "watchdog_stop":
                    server.send_signal(signal.SIGKILL)
                    server.wait(timeout=30)
                else:
                    emu.silence(3)
                proc.wait(timeout=120)
            finally:
                if proc.poll() is None:
                    proc.kill()
            motors = {i: (m.torque, m.goal, m.present) for i, m in emu.motors.items()}
    finally:
        if server is not None and server.poll() is None:
            server.kill()
            server.wait(timeout=30)
    stdout, stderr = stdout_path.read_text(), stderr_path.read_text()
    assert proc.returncode == 1, stderr[-3000:]
    (summary,) = json.loads((out / "summary.json").read_text())
    assert summary["stop_reason"] == ("error" if stop == "bus_fault" else stop), (
        f"{summary}\n{stderr[-3000:]}"
    )
    assert all(torque for torque, _, _ in motors.values()), motors  # nothing went limp
    target = [steady_arm.ticks(r) for r in steady_arm.TARGET]
    assert [goal for _, goal, _ in motors.values()] == target, motors  # held; still squeezing
    assert motors[6][2] == steady_arm.ticks(steady_arm.OBJECT_RAD)  # the object is still held
    assert "the arm holds its position with torque on" in stdout
    said = {
        "estop": "e-stop (SIGINT) at step ",
        "watchdog_stop": "watchdog stop (no action for 1 s) at step ",
        "bus_fault": "BusError: sync read of [1, 2, 3, 4, 5, 6]",
    }[stop]
    assert said in stderr and "the robot is holding" in stderr
    if stop == "watchdog_stop":
        # said at the step the policy server went, not only in the final summary
        rows = (out / "episode_000" / "run.jsonl").read_text().splitlines()[:-1]
        first_failed = next(r["step"] for r in map(json.loads, rows) if r["policy_error"])
        lost = re.search(rf"policy server ws://127.0.0.1:{port} lost at step (\d+) ", stderr)
        assert lost is not None, stderr[-3000:]
        assert int(lost.group(1)) == first_failed and lost.start() < stderr.index(said)
