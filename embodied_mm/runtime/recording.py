"""Run artefacts of a deployment: a JSONL log (one line per control step) and a video.

Both survive a ``kill -9`` of ``deploy`` at any moment, keeping everything but (at most) the
last video frame:

- ``run.jsonl`` is line-buffered, so each step's line reaches the OS as it is written.
- ``<camera>.mp4`` is a *fragmented* MP4: an empty ``moov`` header first, then one
  ``moof``/``mdat`` fragment per frame. A plain MP4 keeps its index in a ``moov`` written at
  close, so a killed writer left an unreadable file (OpenCV's writer left 44 bytes). Each
  fragment leaves the process in one ``write()`` (the muxer flushes after every packet into
  a buffer larger than any frame), so the file always ends on a fragment boundary. The muxer
  writes a frame's fragment when the next frame arrives (it needs the frame's duration),
  hence "all but the last frame".
"""

from __future__ import annotations

import json
import os
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

# MPEG-4 Part 2 (OpenCV's "mp4v", what this wrote before) costs ~3 ms a 640x480 frame on
# one core; libx264 at preset veryfast ~3x that, inside the control loop.
VIDEO_CODEC = "mpeg4"
# Fixed quantiser 4: ~37 dB worst-frame PSNR at 640x480, as OpenCV's mp4v writer gave.
VIDEO_QSCALE = 4
# A keyframe a second: a player can start anywhere within a second of where it seeks.
GOP_SECONDS = 1.0
FRAGMENTED_MP4 = "frag_every_frame+empty_moov+default_base_moof"
# Larger than any compressed frame, so that one fragment is one write() (see above).
WRITE_BUFFER_BYTES = 8 << 20


class RunRecorder:
    """Writes ``run.jsonl`` and, when a camera is named, ``<camera>.mp4`` under ``out_dir``."""

    def __init__(self, out_dir: str | Path, camera: str | None = None, fps: float = 20.0) -> None:
        if fps <= 0:
            raise ValueError(f"fps must be > 0, got {fps}")
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.out_dir / "run.jsonl"
        self._log = self.log_path.open("w", encoding="utf-8", buffering=1)  # line-buffered
        self.camera = camera
        self.fps = fps
        self.video_path = self.out_dir / f"{camera}.mp4" if camera else None
        self._file: Any = None  # the raw (unbuffered) mp4 file
        self._container: Any = None
        self._stream: Any = None
        self.frames = 0

    def log(self, record: dict[str, Any]) -> None:
        self._log.write(json.dumps(record, default=_jsonable) + "\n")

    def add_frame(self, image: np.ndarray) -> None:
        """(H, W, 3) uint8 RGB; every frame of a run has the same size."""
        if self.video_path is None:
            return
        import av

        image = np.ascontiguousarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(
                f"expected an (H, W, 3) uint8 RGB frame, got {image.shape} {image.dtype}"
            )
        if self._container is None:
            self._open_video(image.shape[0], image.shape[1])
        frame = av.VideoFrame.from_ndarray(image, format="rgb24")
        frame.pts = self.frames
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self.frames += 1

    def _open_video(self, height: int, width: int) -> None:
        import av

        if height % 2 or width % 2:
            raise ValueError(
                f"{self.video_path}: yuv420p needs an even frame size, got {height}x{width}"
            )
        # buffering=0: every flush of the muxer's buffer is one write() of whole fragments.
        self._file = open(self.video_path, "wb", buffering=0)  # noqa: SIM115 (closed in close)
        try:
            self._container = av.open(
                self._file,
                mode="w",
                format="mp4",
                options={"movflags": FRAGMENTED_MP4, "flush_packets": "1"},
                buffer_size=WRITE_BUFFER_BYTES,
            )
            rate = Fraction(self.fps).limit_denominator(1001)
            stream = self._container.add_stream(
                VIDEO_CODEC,
                rate=rate,
                options={
                    "g": str(max(1, round(GOP_SECONDS * self.fps))),
                    "qmin": str(VIDEO_QSCALE),
                    "qmax": str(VIDEO_QSCALE),
                },
            )
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            stream.time_base = 1 / rate
            stream.codec_context.thread_count = 1  # predictable cost inside the control loop
            self._stream = stream
        except Exception:
            self._file.close()
            raise

    def close(self) -> None:
        """Flush both files to disk; the video gets its closing index (``mfra``)."""
        if not self._log.closed:
            self._log.flush()
            os.fsync(self._log.fileno())
            self._log.close()
        if self._container is not None:
            for packet in self._stream.encode():  # the encoder's last frames
                self._container.mux(packet)
            self._container.close()
            self._container = self._stream = None
            os.fsync(self._file.fileno())
            self._file.close()


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return np.round(obj.astype(np.float64), 5).tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    return str(obj)
