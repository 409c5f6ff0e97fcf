"""Per-episode video clips of an evaluation: the failures first, for people to watch.

A :class:`ClipBudget` (one per task) says how many clips are still wanted: the first
``max_failures`` failed episodes and the first ``max_successes`` successful ones, in seed
order. While clips are still wanted, :class:`ClipRecorder` streams every live env of a batch
into its own mp4 (outcomes are known only at the end); when the batch has ended the clips
not wanted are deleted, and once the budget is spent no frame is rendered any more.

Frames come from the presentation camera (480×360, with the instruction and the current plan
drawn on them, :mod:`embodied_mm.envs.presentation`) or, with ``camera="policy"``, from the
policy's own front camera.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from embodied_mm.data.video import VideoWriter
from embodied_mm.envs.presentation import VIDEO_CAMERAS, draw_banner
from embodied_mm.errors import UsageError


def check_video_camera(camera: str) -> str:
    if camera not in VIDEO_CAMERAS:
        raise UsageError(f"--video-camera {camera!r}: use one of {', '.join(VIDEO_CAMERAS)}")
    return camera


@dataclass
class ClipBudget:
    """Clips still wanted for one task; ``clip_dir`` is where they go."""

    clip_dir: Path
    max_failures: int = 4
    max_successes: int = 1
    failures: int = 0
    successes: int = 0

    @property
    def spent(self) -> bool:
        return self.failures >= self.max_failures and self.successes >= self.max_successes

    def take(self, success: bool) -> bool:
        """Whether the clip of an episode that ended with ``success`` is kept (and counted)."""
        if success and self.successes < self.max_successes:
            self.successes += 1
            return True
        if not success and self.failures < self.max_failures:
            self.failures += 1
            return True
        return False


class ClipRecorder:
    """Video frames of the envs of one vector env (``envs``), one writer per recorded env.

    ``always``: env index → path of a video that is kept whatever the outcome (the task's
    video); ``budget``: per-episode clips (``episode_<seed>.mp4`` in its ``clip_dir``).
    """

    def __init__(
        self,
        envs: Any,
        seeds: Sequence[int],
        tasks: Sequence[str],
        camera: str = "presentation",
        fps: int = 20,
        always: dict[int, Path] | None = None,
        budget: ClipBudget | None = None,
    ) -> None:
        self.envs = envs
        self.tasks = list(tasks)
        self.camera = check_video_camera(camera)
        self.budget = budget
        self.always = {i: VideoWriter(p, fps) for i, p in (always or {}).items()}
        self.clips: dict[int, VideoWriter] = {}
        self._ended: dict[int, tuple[VideoWriter, dict[str, Any]]] = {}  # decided by finish()
        if budget is not None and not budget.spent:
            self.clips = {
                i: VideoWriter(budget.clip_dir / f"episode_{int(s):06d}.mp4", fps)
                for i, s in enumerate(seeds)
            }

    @property
    def active(self) -> bool:
        return bool(self.always or self.clips)

    def capture(
        self,
        obs: dict[str, Any],  # the vector env's batched observation
        envs: Iterable[int],
        plans: Sequence[str | None],
    ) -> None:
        """Add this step's frame of each env in ``envs`` that is being recorded."""
        wanted = [i for i in envs if i in self.always or i in self.clips]
        if not wanted:
            return
        if self.camera == "policy":
            frames = {i: obs["pixels"]["front"][i] for i in wanted}
        else:  # one call renders every env of the vector env; only those wanted are drawn on
            views = self.envs.call("render_presentation")
            frames = {i: draw_banner(views[i], self.tasks[i], plans[i]) for i in wanted}
        for i, img in frames.items():
            for writers in (self.always, self.clips):
                if i in writers:
                    writers[i].add(np.asarray(img))

    def episode_ended(self, i: int, record: dict[str, Any]) -> None:
        """Close env ``i``'s writers; whether its clip is kept is decided by :meth:`finish`."""
        if i in self.always:
            self.always.pop(i).close()
        writer = self.clips.pop(i, None)
        if writer is not None:
            writer.close()
            self._ended[i] = (writer, record)

    def finish(self) -> None:
        """Once the batch has ended: keep the clips the budget wants, in env (= seed) order;
        a kept clip's path goes into its record's ``video``, the others are deleted."""
        for i in sorted(self._ended):
            writer, record = self._ended[i]
            if self.budget is not None and self.budget.take(bool(record["success"])):
                record["video"] = str(writer.path)
            else:
                writer.discard()
        self._ended.clear()

    def close(self) -> None:
        """Close what is still open (an error ended the batch): partial clips are deleted."""
        for writer in self.always.values():
            writer.close()
        for writer in self.clips.values():
            writer.discard()
        for writer, _ in self._ended.values():  # finish() did not run
            writer.discard()
        self.always.clear()
        self.clips.clear()
        self._ended.clear()
