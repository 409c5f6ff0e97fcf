"""Run artefacts of a deployment: a JSONL log (one line per control step) and a video."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np


class RunRecorder:
    """Writes ``run.jsonl`` and, when a camera is named, ``<camera>.mp4`` under ``out_dir``."""

    def __init__(self, out_dir: str | Path, camera: str | None = None, fps: float = 20.0) -> None:
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.out_dir / "run.jsonl"
        self._log = self.log_path.open("w", encoding="utf-8")
        self.camera = camera
        self.fps = fps
        self.video_path = self.out_dir / f"{camera}.mp4" if camera else None
        self._video: Any = None
        self.frames = 0

    def log(self, record: dict[str, Any]) -> None:
        self._log.write(json.dumps(record, default=_jsonable) + "\n")

    def add_frame(self, image: np.ndarray) -> None:
        """(H, W, 3) uint8 RGB."""
        if self.video_path is None:
            return
        import cv2

        if self._video is None:
            h, w = image.shape[:2]
            fourcc = cv2.VideoWriter_fourcc(*"mp4v")
            self._video = cv2.VideoWriter(str(self.video_path), fourcc, self.fps, (w, h))
            if not self._video.isOpened():
                raise RuntimeError(f"cannot open a video writer for {self.video_path}")
        self._video.write(np.ascontiguousarray(image[..., ::-1]))  # OpenCV wants BGR
        self.frames += 1

    def close(self) -> None:
        self._log.close()
        if self._video is not None:
            self._video.release()
            self._video = None


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return np.round(obj.astype(np.float64), 5).tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    return str(obj)
