"""Camera streams as video files: PyAV encoding, and decoding frames by timestamp.

Encoding follows LeRobot's choice of a short GOP (a keyframe every ``gop`` frames) so that a
random frame costs at most ``gop`` decodes after a seek. Decoding keeps each file open
(:class:`VideoDecoder`), continues forward without seeking when the requested timestamps
follow the last one (sequential access), and checks every returned frame against the
requested timestamp within a tolerance.
"""

from __future__ import annotations

import math
import os
from collections import OrderedDict
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from embodied_mm.errors import UsageError

DEFAULT_CODEC = "h264"  # libx264; also supported: "libsvtav1" (LeRobot's default), "mpeg4"
DEFAULT_PIX_FMT = "yuv420p"
DEFAULT_GOP = 2
DEFAULT_CRF = 20
# LeRobot's default: frames decoded for a timestamp must lie within 1e-4 s of it.
DEFAULT_TOLERANCE_S = 1e-4
# Decoding forward from the current position beats a seek for short gaps (a seek costs a
# decoder flush plus up to ``gop`` frames).
MAX_FORWARD_FRAMES = 4


class VideoDecodeError(UsageError):
    """A frame could not be decoded, or not within tolerance; the message names the file."""


def encode_video(
    frames: np.ndarray,  # (T, H, W, 3) uint8
    path: Path,
    fps: int,
    codec: str = DEFAULT_CODEC,
    pix_fmt: str = DEFAULT_PIX_FMT,
    gop: int = DEFAULT_GOP,
    crf: int = DEFAULT_CRF,
) -> None:
    """Encode RGB frames to ``path``; frame ``i`` gets presentation time ``i / fps``."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"expected (T, H, W, 3) uint8 frames, got {frames.shape} {frames.dtype}")
    if len(frames) == 0:
        raise ValueError(f"{path}: no frames to encode")
    _, h, w, _ = frames.shape
    if h % 2 or w % 2:
        raise ValueError(f"{path}: {pix_fmt} needs even height and width, got {h}x{w}")
    options = _codec_options(codec, gop, crf)
    with av.open(str(path), mode="w", format="mp4") as container:
        stream = container.add_stream(codec, rate=fps, options=options)
        stream.width, stream.height, stream.pix_fmt = w, h, pix_fmt
        stream.time_base = Fraction(1, fps)
        stream.codec_context.thread_count = 1  # recording workers already fill the cores
        for i, img in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
            frame.pts = i
            frame.time_base = Fraction(1, fps)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def check_codec(codec: str) -> None:
    """``codec`` is a video encoder this PyAV (FFmpeg) build has, else a one-line
    :class:`UsageError` naming the usual ones."""
    try:
        av.Codec(codec, "w")
    except Exception as err:  # av.codec.codec.UnknownCodecError; any failure means unusable
        raise UsageError(
            f"unknown video codec {codec!r} (not an encoder of this FFmpeg build); use h264, "
            "libsvtav1 (LeRobot's) or mpeg4"
        ) from err


def _codec_options(codec: str, gop: int, crf: int) -> dict[str, str]:
    options = {"g": str(gop)}
    if codec in ("h264", "libx264"):
        # bf=0: no B-frames, so decode order == presentation order and seeks land cleanly.
        options.update({"crf": str(crf), "preset": "veryfast", "bf": "0"})
    elif codec == "libsvtav1":
        options.update({"crf": str(crf), "preset": "12"})
    return options


class VideoWriter:
    """An mp4 written frame by frame (what :func:`encode_video` writes, without holding the
    episode in memory): ``add`` RGB frames (H, W, 3) uint8 of one size, then ``close``;
    ``discard`` closes and deletes the file (an episode whose clip is not wanted)."""

    def __init__(self, path: Path, fps: int, codec: str = DEFAULT_CODEC, gop: int = 10,
                 crf: int = 23) -> None:  # fmt: skip
        self.path = Path(path)
        self.fps = fps
        self.frames = 0
        self._codec, self._options = codec, _codec_options(codec, gop, crf)
        self._container = None
        self._stream = None

    def add(self, img: np.ndarray) -> None:
        img = np.ascontiguousarray(img)
        if img.ndim != 3 or img.shape[-1] != 3 or img.dtype != np.uint8:
            raise ValueError(f"expected an (H, W, 3) uint8 frame, got {img.shape} {img.dtype}")
        if self._container is None:
            h, w, _ = img.shape
            if h % 2 or w % 2:
                raise ValueError(f"{self.path}: yuv420p needs even height and width, got {h}x{w}")
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._container = av.open(str(self.path), mode="w", format="mp4")
            self._stream = self._container.add_stream(self._codec, rate=self.fps,
                                                      options=self._options)  # fmt: skip
            self._stream.width, self._stream.height = w, h
            self._stream.pix_fmt = DEFAULT_PIX_FMT
            self._stream.time_base = Fraction(1, self.fps)
            self._stream.codec_context.thread_count = 1
        frame = av.VideoFrame.from_ndarray(img, format="rgb24")
        frame.pts = self.frames
        frame.time_base = Fraction(1, self.fps)
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self.frames += 1

    def close(self) -> None:
        if self._container is None:
            return
        for packet in self._stream.encode():
            self._container.mux(packet)
        self._container.close()
        self._container = None

    def discard(self) -> None:
        self.close()
        self.path.unlink(missing_ok=True)


def count_frames(path: Path) -> int:
    """Number of frames in a video file, by decoding it (container headers can lie)."""
    try:
        with av.open(str(path)) as container:
            return sum(1 for _ in container.decode(video=0))
    except (av.FFmpegError, IndexError) as e:
        raise VideoDecodeError(f"{path}: cannot decode video ({e})") from e


class VideoDecoder:
    """An open video file that returns frames by presentation timestamp (seconds)."""

    def __init__(self, path: Path, cache_frames: int = 8) -> None:
        self.path = Path(path)
        try:
            self._container = av.open(str(self.path))
            self._stream = self._container.streams.video[0]
        except (av.FFmpegError, IndexError) as e:
            raise VideoDecodeError(f"{self.path}: cannot open video ({e})") from e
        self._stream.codec_context.thread_count = 1  # one decoder per DataLoader worker
        rate = self._stream.average_rate or self._stream.guessed_rate
        self.frame_period = float(1 / rate) if rate else 0.0
        self._frames = None  # the running decode iterator, or None after a seek is needed
        self._last_ts = -np.inf
        self._recent: OrderedDict[float, np.ndarray] = OrderedDict()
        self._cache_frames = cache_frames
        self.decoded = 0  # frames decoded so far (for benchmarks)
        self.seeks = 0

    def close(self) -> None:
        self._container.close()

    def frames_at(
        self, timestamps: Sequence[float], tolerance_s: float = DEFAULT_TOLERANCE_S
    ) -> np.ndarray:  # (N, H, W, 3) uint8
        """The frames shown at ``timestamps`` (seconds from the start of the file)."""
        out: dict[float, np.ndarray] = {}
        for ts in sorted(set(float(t) for t in timestamps)):
            out[ts] = self._frame_at(ts, tolerance_s)
        return np.stack([out[float(t)] for t in timestamps])

    def _frame_at(self, ts: float, tol: float) -> np.ndarray:
        for cached_ts, img in self._recent.items():
            if abs(cached_ts - ts) <= tol:
                return img
        gap = ts - self._last_ts
        if self._frames is None or gap <= 0 or gap > MAX_FORWARD_FRAMES * self.frame_period + tol:
            self._seek(ts)
        while True:
            try:
                frame = next(self._frames)
            except StopIteration:
                self._frames = None
                raise VideoDecodeError(
                    f"{self.path}: no frame at t={ts:.4f}s (the video ends at "
                    f"t={self._last_ts:.4f}s)"
                ) from None
            except av.FFmpegError as e:
                self._frames = None
                raise VideoDecodeError(f"{self.path}: decode failed near t={ts:.4f}s ({e})") from e
            self.decoded += 1
            frame_ts = float(frame.time)
            self._last_ts = frame_ts
            if frame_ts < ts - tol:
                continue  # frames between the keyframe and the one we want
            img = frame_to_rgb(frame)
            self._remember(frame_ts, img)
            if abs(frame_ts - ts) > tol:
                raise VideoDecodeError(
                    f"{self.path}: asked for t={ts:.4f}s, nearest decoded frame is at "
                    f"t={frame_ts:.4f}s (tolerance {tol}s)"
                )
            return img

    def _seek(self, ts: float) -> None:
        offset = round(ts / float(self._stream.time_base))
        try:
            self._container.seek(offset, stream=self._stream, backward=True, any_frame=False)
        except av.FFmpegError as e:
            raise VideoDecodeError(f"{self.path}: seek to t={ts:.4f}s failed ({e})") from e
        self.seeks += 1
        self._frames = self._container.decode(self._stream)
        self._last_ts = -np.inf

    def _remember(self, ts: float, img: np.ndarray) -> None:
        self._recent[ts] = img
        while len(self._recent) > self._cache_frames:
            self._recent.popitem(last=False)


def frame_to_rgb(frame: av.VideoFrame) -> np.ndarray:  # (H, W, 3) uint8
    """RGB pixels of a decoded frame.

    For yuv420p (what we and LeRobot write) OpenCV's BT.601 conversion of the raw planes is
    ~30x faster than PyAV's per-call swscale path on 128² frames, and as close to the source.
    """
    if frame.format.name == "yuv420p" and frame.width % 2 == 0 and frame.height % 2 == 0:
        planes = frame.to_ndarray()  # (H * 3 / 2, W): Y, then U, then V
        return cv2.cvtColor(planes, cv2.COLOR_YUV2RGB_I420)
    return frame.to_ndarray(format="rgb24")


class DecoderPool:
    """Open decoders keyed by file, least recently used closed first; one pool per process.

    A pool is tied to the process that created it: after a fork (DataLoader workers) the
    child starts with an empty pool instead of sharing the parent's file positions.
    """

    def __init__(self, max_open: int = 16) -> None:
        self.max_open = max_open
        self._pid = os.getpid()
        self._decoders: OrderedDict[Path, VideoDecoder] = OrderedDict()

    def get(self, path: Path) -> VideoDecoder:
        if os.getpid() != self._pid:
            self._decoders = OrderedDict()  # inherited from the parent: do not touch
            self._pid = os.getpid()
        dec = self._decoders.get(path)
        if dec is None:
            dec = VideoDecoder(path)
            self._decoders[path] = dec
            while len(self._decoders) > self.max_open:
                self._decoders.popitem(last=False)[1].close()
        else:
            self._decoders.move_to_end(path)
        return dec

    def decoded_frames(self) -> int:
        return sum(d.decoded for d in self._decoders.values())

    def close(self) -> None:
        for dec in self._decoders.values():
            dec.close()
        self._decoders.clear()


def concat_videos(parts: list[tuple[Path, int | None]], out: Path, fps: int) -> None:
    """Write ``out`` from ``(file, n)`` parts: the first ``n`` frames of each (all for None).

    Packets are copied, not re-encoded: v3.0 packs many episodes into one mp4, and appending
    an episode must not degrade the ones already there. The parts must come from the same
    encoder settings (:func:`encode_video` guarantees it). A cut (``n``) must fall on an
    episode boundary: each episode is its own encode, so no frame before the cut references
    one after it, whatever the codec's frame reordering.
    """
    if not parts:
        raise ValueError(f"{out}: nothing to concatenate")
    try:
        with av.open(str(out), mode="w", format="mp4") as dst:
            with av.open(str(parts[0][0])) as first:
                # opaque: copy codec parameters without opening an encoder (AV1 decodes with
                # libdav1d, which cannot encode).
                out_stream = dst.add_stream_from_template(first.streams.video[0], opaque=True)
            offset_s = 0.0
            for path, limit in parts:
                with av.open(str(path)) as src:
                    stream = src.streams.video[0]
                    tb = stream.time_base
                    shift = round(offset_s / tb)
                    # Integer pts bounds: Fraction arithmetic per packet dominated the cost.
                    end_pts = None if limit is None else math.ceil((limit - 0.5) / fps / tb)
                    copied = 0
                    for packet in src.demux(stream):
                        if packet.dts is None:  # the demuxer's end-of-stream flush packet
                            continue
                        if end_pts is not None and packet.pts >= end_pts:
                            continue
                        packet.pts += shift
                        packet.dts += shift
                        packet.stream = out_stream
                        dst.mux(packet)
                        copied += 1
                    offset_s += copied / fps
    except av.FFmpegError as e:
        names = ", ".join(str(p) for p, _ in parts)
        raise VideoDecodeError(f"{out}: concatenating {names} failed ({e})") from e
