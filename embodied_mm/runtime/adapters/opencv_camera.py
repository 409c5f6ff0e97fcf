"""A camera through ``cv2.VideoCapture``: USB index, RTSP/HTTP URL, or a video file.

A background thread grabs frames continuously and keeps only the newest one, stamped with
``time.monotonic()`` at capture, so the controller never reads a frame that queued up in a
driver buffer, and the safety filter can see how old it is. When reads fail (cable pulled,
stream dropped, end of a file) the thread re-opens the source with a back-off until it works
again; :attr:`OpenCVCamera.reconnects` counts how often. (A video file therefore loops,
which is what a file standing in for a live camera should do.)
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)


@dataclass
class Frame:
    image: np.ndarray  # (H, W, 3) uint8 RGB
    stamp: float  # time.monotonic() at capture
    index: int  # frames captured since start


def parse_source(source: str | int) -> str | int:
    """``"0"`` → USB index 0; anything else (a URL, a path) stays a string."""
    if isinstance(source, int):
        return source
    return int(source) if source.isdigit() else source


class OpenCVCamera:
    def __init__(
        self,
        source: str | int,
        size: tuple[int, int] | None = None,  # (H, W) resize target; None keeps the native size
        fps: float | None = None,
        reconnect_backoff_s: float = 0.2,
    ) -> None:
        self.source = parse_source(source)
        self.size = size
        self.fps = fps
        self.reconnect_backoff_s = reconnect_backoff_s
        self.reconnects = 0
        self.failed_reads = 0
        self._cap = None
        self._latest: Frame | None = None
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._count = 0

    def _open(self):
        import cv2

        cap = cv2.VideoCapture(self.source)
        if not cap.isOpened():
            cap.release()
            return None
        if self.fps:
            cap.set(cv2.CAP_PROP_FPS, self.fps)
        return cap

    def connect(self, timeout_s: float = 5.0) -> None:
        """Open the source and wait for the first frame."""
        self._cap = self._open()
        if self._cap is None:
            raise ConnectionError(f"cannot open camera source {self.source!r}")
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"camera-{self.source}", daemon=True)
        self._thread.start()
        if self.read(timeout_s=timeout_s) is None:
            self.disconnect()
            raise ConnectionError(f"camera {self.source!r} gave no frame within {timeout_s} s")

    @property
    def is_connected(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        import cv2

        period = 1.0 / self.fps if self.fps and isinstance(self.source, str) else 0.0
        while not self._stop.is_set():
            ok, bgr = (False, None) if self._cap is None else self._cap.read()
            if not ok:
                self.failed_reads += 1
                if self._cap is not None:
                    self._cap.release()
                self._cap = None
                if self._stop.wait(self.reconnect_backoff_s):
                    break
                self._cap = self._open()
                if self._cap is not None:
                    self.reconnects += 1
                    log.warning("camera %r reconnected", self.source)
                continue
            t = time.monotonic()
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            if self.size is not None and rgb.shape[:2] != tuple(self.size):
                rgb = cv2.resize(rgb, (self.size[1], self.size[0]), interpolation=cv2.INTER_AREA)
            with self._cond:
                self._count += 1
                self._latest = Frame(rgb, t, self._count)
                self._cond.notify_all()
            if period:
                # a file decodes faster than real time; pace it like the camera it stands for
                self._stop.wait(max(0.0, period - (time.monotonic() - t)))
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    def read(self, timeout_s: float = 1.0, newer_than: int = 0) -> Frame | None:
        """The newest frame (index > ``newer_than``), waiting up to ``timeout_s``; None if none."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while self._latest is None or self._latest.index <= newer_than:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._cond.wait(remaining)
            return self._latest

    def latest(self) -> Frame | None:
        """The newest frame without waiting (may be old: check its stamp)."""
        with self._cond:
            return self._latest

    def disconnect(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
