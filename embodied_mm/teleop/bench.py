"""``embodied-mm bench teleop``: what teleoperation costs, on emulated hardware.

- device read: :meth:`Teleoperator.get_action` time of the leader arm (6 STS3215 servos on
  the byte-level emulator, one sync read), the gamepad (an SDL virtual pad through pygame) and,
  when stdin is a terminal, the keyboard (a raw-mode poll);
- leader → follower: from the leader's servos being moved to the follower's servos holding the
  new goal (one teleop step through the safety filter, both buses emulated);
- recording: a teleop recording at ``fps`` with two cameras (video files standing in for USB
  cameras, decoded live) on the emulated arms, its achieved rate and late steps.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from embodied_mm.runtime.feetech import control_table as ct
from embodied_mm.runtime.feetech.calibration import JOINT_NAMES, Calibration, JointCalibration
from embodied_mm.runtime.feetech.emulator import FeetechBusEmulator
from embodied_mm.runtime.safety import SafetyFilter
from embodied_mm.teleop.base import Teleoperator
from embodied_mm.teleop.control import teleop_step

IDS = list(range(1, 7))


def _calibration() -> Calibration:
    return Calibration(
        "so101",
        [JointCalibration(n, i, 0, 1048, 3048) for n, i in zip(JOINT_NAMES, IDS, strict=True)],
    )


def _percentiles(samples: list[float]) -> tuple[float, float]:
    p50, p99 = np.percentile(np.asarray(samples), [50, 99]) * 1e3
    return float(p50), float(p99)


def time_reads(teleop: Teleoperator, reads: int) -> tuple[float, float]:
    """(p50, p99) ms of ``get_action``."""
    samples = []
    for _ in range(reads):
        t0 = time.perf_counter()
        teleop.get_action()
        samples.append(time.perf_counter() - t0)
    return _percentiles(samples)


def _write_video(path: Path, frames: int, size: tuple[int, int]) -> None:
    from embodied_mm.data.video import encode_video

    h, w = size
    t = np.arange(frames)[:, None, None, None]
    images = ((np.arange(w)[None, None, :, None] + 4 * t) % 256).repeat(h, 1).repeat(3, 3)
    encode_video(images.astype(np.uint8), path, 30, codec="mpeg4")


def run_bench(
    reads: int = 300,
    trials: int = 200,
    fps: int = 30,
    record_s: float = 10.0,
    camera_size: tuple[int, int] = (480, 640),
    echo: Callable[[str], None] = print,
) -> dict[str, float]:
    import sys

    from embodied_mm.data.teleop_recorder import TeleopRecordConfig, record_teleop
    from embodied_mm.runtime.adapters.feetech import FeetechRobot
    from embodied_mm.runtime.adapters.opencv_camera import OpenCVCamera
    from embodied_mm.runtime.feetech.bus import FeetechBus
    from embodied_mm.teleop.gamepad import GamepadTeleop
    from embodied_mm.teleop.keyboard import KeyboardTeleop
    from embodied_mm.teleop.leader import feetech_leader
    from embodied_mm.teleop.virtual_gamepad import VirtualGamepad

    results: dict[str, float] = {}
    # The emulators answer from threads of this process: give the SDK's status timeout room
    # (a real adapter answers within its latency timer).
    FeetechBus.timeout_margin_ms = 50.0
    with tempfile.TemporaryDirectory() as tmp:
        cal_path = Path(tmp) / "leader.json"
        _calibration().save(cal_path)
        with FeetechBusEmulator(IDS) as leader_emu, FeetechBusEmulator(IDS) as follower_emu:
            leader = feetech_leader(leader_emu.port, cal_path)
            follower = FeetechRobot(follower_emu.port, _calibration())
            follower.connect()
            leader.connect()
            try:
                leader.attach(follower)
                p50, p99 = time_reads(leader, reads)
                results.update(leader_read_p50_ms=p50, leader_read_p99_ms=p99)
                echo(
                    f"device read  leader (6 servos, emulated)  p50 {p50:.2f} ms  p99 {p99:.2f} ms"
                )
                safety = SafetyFilter(follower.default_safety(), fps)
                lat = []
                for k in range(trials):
                    target = 2048 + (10 if k % 2 else -10)  # within one step's rate limit
                    t0 = time.perf_counter()
                    leader_emu.set_positions({1: target})
                    teleop_step(follower, leader, safety)
                    while follower_emu.motors[1].get(ct.GOAL_POSITION) != target:
                        if time.perf_counter() - t0 > 1.0:
                            raise RuntimeError("the follower did not take the leader's goal")
                        time.sleep(0)
                    lat.append(time.perf_counter() - t0)
                p50, p99 = _percentiles(lat)
                results.update(leader_follower_p50_ms=p50, leader_follower_p99_ms=p99)
                echo(f"leader -> follower command (emulated)   p50 {p50:.2f} ms  p99 {p99:.2f} ms")
            finally:
                leader.disconnect()
                follower.disconnect()

            vpad = VirtualGamepad()
            pad = GamepadTeleop(vpad.index)
            pad.connect()
            try:
                vpad.press(pad.config.deadman_button)
                p50, p99 = time_reads(pad, reads)
            finally:
                pad.disconnect()
                vpad.close()
            results.update(gamepad_read_p50_ms=p50, gamepad_read_p99_ms=p99)
            echo(f"device read  gamepad (SDL virtual pad)    p50 {p50:.3f} ms  p99 {p99:.3f} ms")
            if sys.stdin.isatty() and sys.stdout.isatty():
                keyboard = KeyboardTeleop()
                with keyboard:
                    p50, p99 = time_reads(keyboard, reads)
                results.update(keyboard_read_p50_ms=p50, keyboard_read_p99_ms=p99)
                echo(
                    f"device read  keyboard (raw terminal)      p50 {p50:.3f} ms  p99 {p99:.3f} ms"
                )
            else:
                echo("device read  keyboard: skipped (stdin is not a terminal)")

            videos = []
            for name in ("front", "wrist"):
                path = Path(tmp) / f"{name}.mp4"
                _write_video(path, 90, camera_size)
                videos.append((name, path))
            cams = {name: OpenCVCamera(str(path), fps=fps) for name, path in videos}
            leader = feetech_leader(leader_emu.port, cal_path)
            follower = FeetechRobot(follower_emu.port, _calibration(), cams)
            follower.connect()
            leader.connect()
            try:
                _wait_for_frames(cams)
                config = TeleopRecordConfig(
                    episodes=1, fps=fps, task="bench", episode_time_s=record_s, codec="h264"
                )
                summary = record_teleop(
                    follower, leader, Path(tmp) / "ds", config, say=lambda _: None
                )
            finally:
                leader.disconnect()
                follower.disconnect()
            report = summary.reports[0]
            results.update(
                record_target_hz=float(fps),
                record_achieved_hz=report.achieved_hz,
                record_late_steps=float(report.late_steps),
                record_steps=float(report.frames),
            )
            h, w = camera_size
            echo(
                f"recording    2 cameras {w}x{h}, target {fps} Hz: achieved "
                f"{report.achieved_hz:.2f} Hz, {report.late_steps} late of {report.frames} steps"
            )
    return results


def _wait_for_frames(cams: dict, timeout_s: float = 10.0) -> None:
    end = time.monotonic() + timeout_s
    while any(c.latest() is None for c in cams.values()):
        if time.monotonic() > end:
            raise RuntimeError("the bench cameras gave no frame")
        time.sleep(0.01)
