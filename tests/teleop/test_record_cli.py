"""`record --teleop` usage errors: one line, exit 2, nothing written."""

import subprocess
import sys

import pytest

from embodied_mm.runtime.feetech.calibration import JOINT_NAMES, Calibration, JointCalibration
from embodied_mm.runtime.feetech.emulator import FeetechBusEmulator


def run(*args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "embodied_mm.cli.main", "record", *args]
    return subprocess.run(
        cmd, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL
    )


def so101_file(path) -> str:
    joints = [JointCalibration(n, i + 1, 0, 1048, 3048) for i, n in enumerate(JOINT_NAMES)]
    Calibration("so101", joints).save(path)
    return str(path)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--teleop", "joystick"], "unknown --teleop 'joystick'; accepted: keyboard, gamepad"),
        (["--teleop", "leader:/dev/ttyACM1"], "needs --teleop-calibration FILE"),
        (["--robot", "so101:/dev/null"], "give --teleop DEVICE"),
        (["--teleop", "keyboard"], "either a simulated arm (--env ID) or a real one (--robot)"),
    ],
)
def test_bad_teleop_arguments_are_one_line_errors(tmp_path, args, message):
    out = tmp_path / "ds"
    done = run(*args, "--episodes", "1", "--out", str(out))
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr
    assert not out.exists()


def test_a_keyboard_cannot_drive_a_joint_space_arm(tmp_path):
    with FeetechBusEmulator(list(range(1, 7))) as emu:
        done = run(
            "--robot", f"so101:{emu.port}", "--calibration", so101_file(tmp_path / "c.json"),
            "--teleop", "keyboard", "--task", "t", "--episodes", "1", "--out", str(tmp_path / "ds"),
        )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "teleop keyboard gives ee_delta actions of size 7; robot so101 takes joint_pos" in (
        done.stderr
    )
    assert "use --teleop leader:<port>" in done.stderr


def test_an_unreachable_arm_is_one_line(tmp_path):
    done = run(
        "--robot", "so101:/nonexistent/tty", "--calibration", so101_file(tmp_path / "c.json"),
        "--teleop", "keyboard", "--task", "t", "--episodes", "1", "--out", str(tmp_path / "ds"),
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "cannot connect so101:/nonexistent/tty" in done.stderr
    assert "Traceback" not in done.stderr


def test_record_a_real_arm_with_a_leader_from_the_command_line(tmp_path):
    from embodied_mm.data.check import check_dataset
    from embodied_mm.data.reader import DatasetMeta

    out = tmp_path / "ds"
    with (
        FeetechBusEmulator(list(range(1, 7))) as follower,
        FeetechBusEmulator(list(range(1, 7))) as leader,
    ):
        leader.set_positions({1: 2048 + 200})  # the leader's shoulder turned a little
        done = run(
            "--robot", f"so101:{follower.port}", "--calibration", so101_file(tmp_path / "f.json"),
            "--teleop", f"leader:{leader.port}", "--teleop-calibration",
            so101_file(tmp_path / "l.json"), "--task", "wave", "--episodes", "1",
            "--episode-time-s", "0.5", "--reset-time-s", "0", "--out", str(out),
        )  # fmt: skip
        goal = follower.motors[1].present
    assert done.returncode == 0, done.stderr
    assert "1 episodes (1 new); ended: done" in done.stdout
    assert "Hz achieved (target 30)" in done.stderr
    report = check_dataset(out)
    assert report.ok, report.errors
    assert report.frames == 15  # 0.5 s at 30 Hz
    meta = DatasetMeta(out)
    assert meta.info["robot_type"] == "so101"
    assert meta.features["action"]["names"] == list(JOINT_NAMES)
    assert goal > 2048  # the follower went the leader's way (rate-limited: not all of it yet)


def test_record_without_env_or_robot_names_what_to_give(tmp_path):
    done = run("--episodes", "1", "--out", str(tmp_path / "ds"))
    assert done.returncode == 2
    assert "error: give --env ID (and --teleop for a person to drive)" in done.stderr
