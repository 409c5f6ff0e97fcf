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
