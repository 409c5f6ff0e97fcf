"""The controller loop: observe → preprocess → infer → postprocess (safety) → act, at a fixed rate.

Each stage is timed (p50/p99 in :class:`StageTimer`); a step whose busy time exceeds the
control period counts as a deadline miss, and the loop then starts the next step at once
instead of trying to catch up (catching up would send a burst of commands).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from embodied_mm.features import TASK, image_key
from embodied_mm.runtime.chunking import ChunkExecutor
from embodied_mm.runtime.recording import RunRecorder
from embodied_mm.runtime.robot import Robot, RobotObservation
from embodied_mm.runtime.safety import FilteredAction, SafetyFilter
from embodied_mm.runtime.timing import StageTimer


@dataclass
class LoopResult:
    steps: int
    stop_reason: str  # "max_steps" | "episode_done" | "estop" | "watchdog_stop" | "error"
    success: bool | None
    timing: dict[str, float | int]
    interventions: dict[str, int]
    achieved_hz: float
    plans: list[str] = field(default_factory=list)
    error: str | None = None


class ControllerLoop:
    def __init__(
        self,
        robot: Robot,
        executor: ChunkExecutor,
        safety: SafetyFilter,
        hz: float,
        task: str | None = None,
        recorder: RunRecorder | None = None,
        on_step: Callable[[int, ControllerLoop], None] | None = None,
    ) -> None:
        if hz <= 0:
            raise ValueError(f"hz must be positive, got {hz}")
        self.robot = robot
        self.executor = executor
        self.safety = safety
        self.hz = hz
        self.period = 1.0 / hz
        self.task = task
        self.recorder = recorder
        self.on_step = on_step
        self.timer = StageTimer(self.period)
        self.step = 0
        self.error: str | None = None

    def run(self, max_steps: int) -> LoopResult:
        """Run until ``max_steps``, the end of a sim episode, an e-stop or a watchdog stop."""
        reason = "max_steps"
        plans: list[str] = []
        t_begin = time.perf_counter()
        next_tick = t_begin
        steps_run = 0
        for _ in range(max_steps):
            t0 = time.perf_counter()
            try:
                safe, raw, obs = self._step()
            except Exception as e:
                # A robot that cannot be read or commanded (bus error, motor alert, camera gone)
                # is brought to rest if it still can be; the error then ends the run.
                self.error = f"{type(e).__name__}: {e}"
                with contextlib.suppress(Exception):
                    self.robot.safe_stop()
                reason = "error"
                break
            plan = self.executor.plan
            if plan and (not plans or plans[-1] != plan):
                plans.append(plan)
            self._record(obs.frame, raw, safe.action, [i.value for i in safe.interventions], plan)
            steps_run += 1
            self.step += 1
            self.timer.end_step(time.perf_counter() - t0)
            if self.on_step is not None:
                self.on_step(self.step, self)
            if safe.stop:
                reason = "estop" if self.safety.estop.engaged else "watchdog_stop"
                break
            if self.robot.episode_done:
                reason = "episode_done"
                break
            next_tick += self.period
            delay = next_tick - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            else:
                next_tick = time.perf_counter()  # overran: restart the schedule, no burst
        elapsed = time.perf_counter() - t_begin
        success = self.robot.info.get("is_success") if self.robot.info else None
        return LoopResult(
            steps=steps_run,
            stop_reason=reason,
            success=None if success is None else bool(success),
            timing=self.timer.summary(),
            interventions=dict(self.safety.counts),
            achieved_hz=steps_run / elapsed if elapsed > 0 else float("nan"),
            plans=plans,
            error=self.error,
        )

    def _step(self) -> tuple[FilteredAction, np.ndarray | None, RobotObservation]:
        with self.timer.stage("observe"):
            obs = self.robot.get_observation()
        with self.timer.stage("preprocess"):
            frame = dict(obs.frame)
            frame[TASK] = self.task if self.task is not None else (self.robot.task or "")
        with self.timer.stage("infer"):
            raw = self.executor.next_action(frame)
        with self.timer.stage("postprocess"):
            safe = self.safety.filter(raw, self.robot.hold_action(), obs.stamps)
        with self.timer.stage("act"):
            if safe.stop:
                self.robot.safe_stop()
            else:
                self.robot.send_action(safe.action)
        return safe, raw, obs

    def _record(
        self,
        frame: dict[str, Any],
        raw: np.ndarray | None,
        sent: np.ndarray,
        interventions: list[str],
        plan: str | None,
    ) -> None:
        if self.recorder is None:
            return
        self.recorder.log(
            {
                "step": self.step,
                "t": time.time(),
                "raw_action": raw,
                "action": sent,
                "interventions": interventions,
                "plan": plan,
                "infer_ms": self.executor.last_infer_ms,
                "policy_error": self.executor.last_error,
                "stage_ms": {k: v[-1] * 1e3 for k, v in self.timer.samples.items() if v},
            }
        )
        cam = self.recorder.camera
        if cam is not None and image_key(cam) in frame:
            self.recorder.add_frame(frame[image_key(cam)])

    def status_line(self) -> str:
        p50, p99 = self.timer.percentiles_ms("step")
        inf50, _ = self.timer.percentiles_ms("infer")
        n = sum(self.safety.counts.values())
        plan = (self.executor.plan or "")[:40]
        return (
            f"step {self.step:5d} | step p50 {p50:6.1f} ms p99 {p99:6.1f} ms | infer p50 "
            f"{inf50:6.1f} ms | misses {self.timer.deadline_misses} | interventions {n}"
            + (f" | plan: {plan}" if plan else "")
        )
