"""`calibrate --robot so101` and `deploy --robot so101:<port>` as a user runs them, on the
emulated STS3215 bus (subprocesses, the real feetech-servo-sdk)."""

import json
import os
import subprocess
import time

import pytest

from embodied_mm.runtime.feetech import control_table as ct
from embodied_mm.runtime.feetech.calibration import (
    JOINT_NAMES,
    RAD_PER_TICK,
    Calibration,
    JointCalibration,
)
from embodied_mm.runtime.feetech.emulator import FeetechBusEmulator
from tests.cli.test_deploy import CLI, steady_checkpoint, wait_for_steps  # noqa: F401 (fixture)
from tests.runtime import steady_arm

IDS = list(range(1, 7))


def test_calibrate_so101_writes_the_file_and_the_servos(tmp_path):
    out = tmp_path / "so101.json"
    middle = {i: 1000 + 300 * i for i in IDS}  # raw encoder ticks, the arm in its middle pose
    with FeetechBusEmulator(IDS) as emu:
        emu.set_positions(middle)
        proc = subprocess.Popen(
            [*CLI, "calibrate", "--robot", "so101", "--port", emu.port, "--invert", "wrist_roll",
             "--out", str(out)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            assert "middle pose" in proc.stdout.readline()
            proc.stdin.write("\n")
            proc.stdin.flush()
            assert "full range" in proc.stdout.readline()
            # the person swings every joint 400 ticks down and 600 up while the tool samples
            for delta in (-400, 600):
                emu.set_positions({i: middle[i] + delta for i in IDS})
                time.sleep(0.4)
            proc.stdin.write("\n")
            proc.stdin.flush()
            stdout, stderr = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == 0, stderr
        registers = {
            i: (m.get(ct.HOMING_OFFSET), m.get(ct.MIN_POSITION_LIMIT), m.get(ct.MAX_POSITION_LIMIT))
            for i, m in emu.motors.items()
        }
    cal = Calibration.load(out)
    for j in cal.joints:
        assert (j.range_min, j.range_max) == (1548, 2548)  # 1000 ticks, centred on 2048
        assert registers[j.motor_id] == (j.homing_offset, j.range_min, j.range_max)
        assert j.homing_offset == middle[j.motor_id] + 100 - 2048
    assert [j.drive_mode for j in cal.joints] == [0, 0, 0, 0, 1, 0]
    assert "wrist_roll: homing offset" in stdout and "wrote" in stdout


def test_calibrate_refuses_an_unknown_robot(tmp_path):
    r = subprocess.run(
        [*CLI, "calibrate", "--robot", "so102", "--port", str(tmp_path / "tty"), "--out", "c.json"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "unknown --robot 'so102'; known: so100, so101, aloha-viperx, koch" in r.stderr


def so101_calibration() -> Calibration:
    """Offset 0 and a ±500-tick range on every joint (the gripper: -150..+950 ticks)."""
    joints = [
        JointCalibration(n, i, 0, 2048 - 500, 2048 + 500)
        for n, i in zip(JOINT_NAMES, IDS, strict=True)
    ]
    joints[-1].range_min, joints[-1].range_max = 2048 - 150, 2048 + 950
    return Calibration("so101", joints)


def ticks(rad: float) -> int:
    return round(2048 + rad / RAD_PER_TICK)


@pytest.mark.slow
def test_a_servo_that_stops_answering_ends_the_run_holding(steady_checkpoint, tmp_path):  # noqa: F811
    """`deploy --robot so101:<pty>`, the gripper closed on an object; then the elbow servo
    drops off the bus: the run ends with an error naming it, every other servo still powered
    with its goal unchanged (the arm held, the gripper still squeezing)."""
    clip = steady_arm.write_clip(tmp_path / "front.mp4")
    cal = tmp_path / "so101.json"
    so101_calibration().save(cal)
    out = tmp_path / "run"
    stdout_path, stderr_path = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    with (
        FeetechBusEmulator(IDS) as emu,
        stdout_path.open("w") as stdout_file,
        stderr_path.open("w") as stderr_file,
    ):
        emu.block(6, ticks(steady_arm.OBJECT_RAD))
        proc = subprocess.Popen(
            [*CLI, "deploy", "--robot", f"so101:{emu.port}", "--calibration", str(cal),
             "--camera", f"front={clip}", "--checkpoint", str(steady_checkpoint), "--task", "grasp",
             "--steps", "100000", "--hz", "15", "--max-obs-age-s", "1.0", "--out", str(out)],
            stdout=stdout_file, stderr=stderr_file, text=True,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )  # fmt: skip
        try:
            wait_for_steps(out / "episode_000" / "run.jsonl", proc, 10)  # gripper closed
            emu.silence(3)
            proc.wait(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
        motors = {i: (m.torque, m.get(ct.GOAL_POSITION), m.present) for i, m in emu.motors.items()}
    stdout, stderr = stdout_path.read_text(), stderr_path.read_text()
    assert proc.returncode == 1, stderr[-3000:]
    (summary,) = json.loads((out / "summary.json").read_text())
    assert summary["stop_reason"] == "error", summary
    assert "motor 3 (elbow_flex) did not answer" in summary["error"]
    assert all(torque for torque, _, _ in motors.values()), motors  # nothing went limp
    target = [ticks(r) for r in steady_arm.TARGET]
    assert [goal for _, goal, _ in motors.values()] == target, motors  # held; still squeezing
    assert motors[6][2] == ticks(steady_arm.OBJECT_RAD)  # the object is still held
    assert "motor 3 (elbow_flex) did not answer" in stderr and "the robot is holding" in stderr
    assert "the arm holds its position with torque on" in stdout
