"""A control run (or a recorded episode) in Rerun: cameras, state, the policy's raw actions
and what the safety filter let through, the filter's interventions and the plan text, all on
one timeline (``step``, a sequence, and ``time``, seconds), live in a viewer or in an ``.rrd``.

Entity paths (one recording per command)::

    camera/<name>          Image (JPEG-compressed)     every step
    state                  Scalars, one series per dim every step
    action/raw             Scalars                     steps the policy gave an action
    action/filtered        Scalars                     every step (what was sent)
    safety/interventions   Scalars: count this step    every step
    safety/events          TextLog (warning)           steps with interventions
    plan                   TextLog                     when the plan text changes
    task                   TextDocument                when the instruction changes
    episode                TextLog                     at each episode's first step

Usage analytics: logging to a file sends nothing; the Rerun *viewer* reports anonymous
usage. :func:`spawn_viewer` starts it with ``CI=1`` in its environment (Rerun's switch:
analytics off on CI machines), and ``rerun analytics disable`` turns them off for good. The
viewer is a separate process: nothing in our command waits on it.

``rerun-sdk`` is the optional extra ``[viz]``: without it ``--display rerun`` is a one-line
error saying how to install it.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from embodied_mm.errors import UsageError
from embodied_mm.features import OBS_STATE

DISPLAYS = ("none", "rerun")
IMAGE_PREFIX = "observation.images."


def _import_rerun():
    try:
        import rerun as rr
    except ImportError:
        raise UsageError(
            "--display rerun needs the Rerun SDK: pip install 'embodied-mm[viz]' "
            "(rerun-sdk==0.41.0)"
        ) from None
    return rr


class RerunLog:
    """One Rerun recording; :meth:`log_step` once per control step (see the module doc)."""

    def __init__(self, rec: Any, rr: Any, jpeg_quality: int = 90) -> None:
        self.rec, self.rr = rec, rr
        self.jpeg_quality = jpeg_quality
        self._plan: str | None = None
        self._task: str | None = None
        self.steps = 0
        # episodes follow each other on the timeline: their steps and times are offset
        self._step0, self._t0 = 0, 0.0
        self._next_step, self._next_t = 0, 0.0

    def log_step(
        self,
        step: int,
        t: float,  # seconds on the run's clock (simulated or wall)
        frame: Mapping[str, Any],  # LeRobot keys: observation.images.<cam>, observation.state
        raw: np.ndarray | None,  # (D,) the policy's action, None when it gave none
        sent: np.ndarray | None,  # (D,) what the safety filter let through
        interventions: Sequence[str] = (),
        plan: str | None = None,
        task: str | None = None,
    ) -> None:
        rr, rec = self.rr, self.rec
        step, t = self._step0 + int(step), self._t0 + float(t)
        self._next_step, self._next_t = max(self._next_step, step + 1), max(self._next_t, t)
        rec.set_time("step", sequence=step)
        rec.set_time("time", duration=t)
        for key, value in frame.items():
            if key.startswith(IMAGE_PREFIX):
                image = rr.Image(np.ascontiguousarray(value))  # (H, W, 3) uint8
                rec.log(f"camera/{key[len(IMAGE_PREFIX) :]}", image.compress(self.jpeg_quality))
        if OBS_STATE in frame:
            rec.log("state", rr.Scalars(np.asarray(frame[OBS_STATE], dtype=np.float64)))
        if raw is not None:
            rec.log("action/raw", rr.Scalars(np.asarray(raw, dtype=np.float64)))
        if sent is not None:
            rec.log("action/filtered", rr.Scalars(np.asarray(sent, dtype=np.float64)))
        rec.log("safety/interventions", rr.Scalars(float(len(interventions))))
        if interventions:
            rec.log("safety/events", rr.TextLog(", ".join(interventions), level="WARN"))
        if plan and plan != self._plan:
            rec.log("plan", rr.TextLog(plan))
        self._plan = plan or self._plan
        if task and task != self._task:
            rec.log("task", rr.TextDocument(task))
            self._task = task
        self.steps += 1

    def log_scalar(self, path: str, value: float) -> None:
        """One more scalar series at the current step (e.g. a dataset's intervention flag)."""
        self.rec.log(path, self.rr.Scalars(float(value)))

    def new_episode(self, index: int | None = None) -> None:
        """The next step starts an episode, after the last one on the timeline (its steps
        count from 0 again); its plan and task are logged afresh."""
        self._step0, self._t0 = self._next_step, self._next_t
        self._plan = self._task = None
        if index is not None:
            self.rec.set_time("step", sequence=self._step0)
            self.rec.set_time("time", duration=self._t0)
            self.rec.log("episode", self.rr.TextLog(f"episode {index}"))

    def close(self) -> None:
        self.rec.flush(timeout_sec=10.0)  # a viewer closed meanwhile must not hang the command
        self.rec.disconnect()


def open_rerun(app_id: str, rrd: Path | None = None) -> RerunLog:
    """A recording to ``rrd`` (an ``.rrd`` file), or streamed to a viewer started for it."""
    rr = _import_rerun()
    rec = rr.RecordingStream(f"embodied_mm_{app_id}")
    if rrd is not None:
        rrd = Path(rrd)
        if rrd.suffix != ".rrd":
            raise UsageError(f"--rrd {rrd}: the file must end in .rrd")
        rrd.parent.mkdir(parents=True, exist_ok=True)
        rec.save(str(rrd))
    else:
        rec.connect_grpc(f"rerun+http://127.0.0.1:{spawn_viewer()}/proxy")
    return RerunLog(rec, rr)


def _viewer_executable() -> str | None:
    """The ``rerun`` viewer rerun-sdk installs beside this interpreter (also when its bin
    directory is not on PATH), else the one on PATH."""
    here = Path(sys.executable).parent / "rerun"
    return str(here) if here.is_file() else shutil.which("rerun")


def spawn_viewer(wait_s: float = 20.0) -> int:
    """Start a Rerun viewer on a free local port and return the port once it listens.

    Not ``rr.spawn``: the viewer gets ``CI=1`` in its own environment only (its usage
    analytics off, see the module docstring), and is found beside this interpreter. A
    machine without a display, or a viewer that exits at start, is a one-line error that
    points to ``--rrd``.
    """
    if sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    ):
        raise UsageError(
            "--display rerun needs a display for the viewer (no DISPLAY or WAYLAND_DISPLAY); "
            "write the recording with --rrd PATH and open it with `rerun PATH` elsewhere"
        )
    exe = _viewer_executable()
    if exe is None:
        raise UsageError("no `rerun` viewer executable: pip install 'embodied-mm[viz]'")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "CI": "1", "RERUN_APP_ONLY": "true"}
    # the viewer keeps its own copy of this file's descriptor; ours only reads why it failed
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen([exe, "--port", str(port)], env=env, stdout=log, stderr=log,
                                start_new_session=True)  # fmt: skip
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline and proc.poll() is None:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    time.sleep(0.5)  # a viewer that cannot open its window exits right after
                    if proc.poll() is None:
                        return port
            time.sleep(0.1)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.seek(0)
        lines = [ln for ln in log.read().decode(errors="replace").splitlines() if ln.strip()]
    why = lines[-1].strip() if lines else f"exit code {proc.returncode}"
    raise UsageError(f"the Rerun viewer did not start ({why}); use --rrd PATH instead")


def display_log(display: str, rrd: Path | None, app_id: str) -> RerunLog | None:
    """What ``--display``/``--rrd`` ask for: a :class:`RerunLog`, or None for no viewer."""
    if display not in DISPLAYS:
        raise UsageError(f"--display {display!r}: use one of {', '.join(DISPLAYS)}")
    if display == "none" and rrd is None:
        return None
    return open_rerun(app_id, rrd)
