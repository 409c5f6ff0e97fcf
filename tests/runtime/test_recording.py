"""Run artefacts survive a kill -9 of the recording process: the video decodes (all but at
most the last frame) and every logged step is in run.jsonl."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from embodied_mm.runtime.recording import RunRecorder

H, W = 96, 128


def _frame(i: int) -> np.ndarray:  # (H, W, 3) uint8, a flat grey level per frame
    return np.full((H, W, 3), (i * 7) % 250, np.uint8)


# Records frames 0, 1, ... printing each index once its frame and log line are written; with
# a count, it stops after that many and waits to be killed (a deploy blocked on its robot).
RECORD = """
import sys, time
import numpy as np
from embodied_mm.runtime.recording import RunRecorder
from tests.runtime.test_recording import _frame
rec = RunRecorder(sys.argv[1], "front", 20.0)
stop = int(sys.argv[2])
i = 0
while stop < 0 or i < stop:
    rec.add_frame(_frame(i))
    rec.log({"step": i, "action": np.zeros(3)})
    print(i, flush=True)
    i += 1
print("waiting", flush=True)
time.sleep(600)
"""


def _start(out: Path, stop: int) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", RECORD, str(out), str(stop)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )


def _kill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.stdout is not None
    proc.stdout.close()


def _decoded_levels(path: Path) -> list[int]:
    """Grey level of every frame, decoding the whole file (an error fails the test)."""
    with av.open(str(path)) as container:
        return [
            round(float(f.to_ndarray(format="rgb24").mean())) for f in container.decode(video=0)
        ]


def test_kill_9_after_frames_leaves_all_but_the_last_frame_and_every_log_line(tmp_path):
    n = 30
    proc = _start(tmp_path, n)
    assert proc.stdout is not None
    lines = [proc.stdout.readline().strip() for _ in range(n + 1)]
    assert lines[-1] == "waiting", lines
    _kill(proc)

    levels = _decoded_levels(tmp_path / "front.mp4")
    assert n - 1 <= len(levels) <= n
    expected = [(i * 7) % 250 for i in range(len(levels))]
    assert np.abs(np.array(levels) - expected).max() <= 2  # the right frames, in order
    cap = cv2.VideoCapture(str(tmp_path / "front.mp4"))  # what a person would open it with
    read = 0
    while cap.read()[0]:
        read += 1
    cap.release()
    assert read == len(levels)
    steps = [json.loads(x)["step"] for x in (tmp_path / "run.jsonl").read_text().splitlines()]
    assert steps == list(range(n))


def test_kill_9_at_random_moments_always_leaves_a_decodable_video(tmp_path):
    rng = np.random.default_rng(0)
    for trial in range(4):
        out = tmp_path / f"run{trial}"
        proc = _start(out, -1)
        assert proc.stdout is not None
        wanted = int(rng.integers(1, 40))
        for _ in range(wanted):
            reported = int(proc.stdout.readline())
        _kill(proc)  # while it keeps adding frames
        levels = _decoded_levels(out / "front.mp4")
        assert len(levels) >= reported  # every frame reported, but the last one
        expected = [(i * 7) % 250 for i in range(len(levels))]
        assert np.abs(np.array(levels) - expected).max() <= 2
        records = [json.loads(x) for x in (out / "run.jsonl").read_text().splitlines()]
        assert [r["step"] for r in records] == list(range(len(records)))
        assert len(records) >= reported + 1


def test_clean_close_keeps_every_frame(tmp_path):
    rec = RunRecorder(tmp_path, "front", 20.0)
    for i in range(12):
        rec.add_frame(_frame(i))
        rec.log({"step": i})
    rec.close()
    assert len(_decoded_levels(tmp_path / "front.mp4")) == 12
    cap = cv2.VideoCapture(str(tmp_path / "front.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 12
    cap.release()


def test_bad_frames_are_refused_naming_the_problem(tmp_path):
    rec = RunRecorder(tmp_path, "front", 20.0)
    with pytest.raises(ValueError, match="uint8 RGB"):
        rec.add_frame(np.zeros((H, W), np.uint8))
    with pytest.raises(ValueError, match="even frame size"):
        rec.add_frame(np.zeros((H + 1, W, 3), np.uint8))
    rec.close()
