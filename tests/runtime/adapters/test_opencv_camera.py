"""OpenCV camera on real video files (written with PyAV), including dropout and reconnect."""

import time

import av
import numpy as np
import pytest

from embodied_mm.runtime.adapters.opencv_camera import OpenCVCamera, parse_source


def write_video(path, n=10, size=(48, 64), shade=0):
    """n frames whose mean brightness encodes the frame number."""
    container = av.open(str(path), mode="w")
    stream = container.add_stream("mpeg4", rate=30)
    stream.height, stream.width = size
    stream.pix_fmt = "yuv420p"
    for i in range(n):
        img = np.full((*size, 3), shade + 20 * i % 255, dtype=np.uint8)
        for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()


def test_parse_source():
    assert parse_source("0") == 0 and parse_source(2) == 2
    assert parse_source("rtsp://cam/stream") == "rtsp://cam/stream"


def test_reads_timestamped_frames_resized(tmp_path):
    path = tmp_path / "clip.mp4"
    write_video(path)
    cam = OpenCVCamera(str(path), size=(32, 32), fps=100)
    cam.connect()
    try:
        first = cam.read(timeout_s=2)
        second = cam.read(timeout_s=2, newer_than=first.index)
        assert first.image.shape == (32, 32, 3) and first.image.dtype == np.uint8
        assert second.index > first.index and second.stamp >= first.stamp
        assert abs(first.stamp - time.monotonic()) < 5  # on the monotonic clock
    finally:
        cam.disconnect()


def test_reconnects_after_dropout(tmp_path):
    """The end of a file is a dropout: the camera re-opens the source and frames flow again."""
    path = tmp_path / "clip.mp4"
    write_video(path, n=5)
    cam = OpenCVCamera(str(path), fps=200, reconnect_backoff_s=0.05)
    cam.connect()
    try:
        deadline = time.monotonic() + 10
        while cam.reconnects < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert cam.reconnects >= 2 and cam.failed_reads >= 2
        last = cam.latest()
        assert cam.read(timeout_s=2, newer_than=last.index) is not None
    finally:
        cam.disconnect()
    assert not cam.is_connected


def test_recovers_when_the_source_comes_back(tmp_path):
    path = tmp_path / "late.mp4"
    write_video(path, n=3)
    cam = OpenCVCamera(str(path), fps=200, reconnect_backoff_s=0.05)
    cam.connect()
    try:
        path.unlink()  # the source disappears
        time.sleep(0.3)
        gone_at = cam.latest().index
        assert cam.read(timeout_s=0.2, newer_than=gone_at) is None
        write_video(path, n=3, shade=100)  # and comes back
        assert cam.read(timeout_s=5, newer_than=gone_at) is not None
    finally:
        cam.disconnect()


def test_unopenable_source_is_a_clear_error(tmp_path):
    with pytest.raises(ConnectionError, match="cannot open camera source"):
        OpenCVCamera(str(tmp_path / "nope.mp4")).connect()
