"""The controller loop: observe → preprocess → infer → postprocess (safety) → act, at a fixed rate.

Each stage is timed (p50/p99 in :class:`StageTimer`); a step whose busy time exceeds the
control period counts as a deadline miss, and the loop then starts the next step at once
instead of trying to catch up (catching up would send a burst of commands).

Inference and the safety filter are the :class:`~embodied_mm.runtime.controller.Controller`'s,
the same that ``rollout`` and ``eval`` step simulated envs with. An engaged e-stop skips
inference (which can take up to the server timeout): the step goes straight to the hold.
``paced=False`` runs the steps back to back (``rollout`` and ``demo`` in simulated time). Things an operator must know at once (the policy became unavailable or
came back, a stop and why) are passed to ``on_event`` as one line of text when they happen
(logged as warnings without it).

With a :class:`~embodied_mm.runtime.intervention.Takeover` (``deploy --teleop``) a person can
take over at any step: the device's command then takes the executor's place in front of the
same filter, and handing back resets the executor. With an ``episode`` buffer every step's
observation, the command sent and its ``intervention`` flag (1: the person drove) are kept
for the dataset (``deploy --record``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from embodied_mm.data.episode import EpisodeBuffer
from embodied_mm.features import INTERVENTION, TASK, image_key
from embodied_mm.runtime.cadence import cadence_report, delay_status
from embodied_mm.runtime.chunking import ChunkExecutor
from embodied_mm.runtime.command_interpolation import CommandStream
from embodied_mm.runtime.controller import Controller
from embodied_mm.runtime.instruction import Instruction
from embodied_mm.runtime.intervention import Takeover
from embodied_mm.runtime.plan_log import PlanLog
from embodied_mm.runtime.recording import RunRecorder
from embodied_mm.runtime.robot import Robot, RobotObservation
from embodied_mm.runtime.safety import FilteredAction, SafetyFilter
from embodied_mm.runtime.timing import StageTimer
from embodied_mm.viz.rerun_log import RerunLog

log = logging.getLogger(__name__)


@dataclass
class LoopResult:
    steps: int
    # "max_steps" | "episode_done" | "estop" | "watchdog_stop" | "error" | "next" | "stop"
    # (the last two: the person's controls, with --teleop)
    stop_reason: str
    success: bool | None
    timing: dict[str, float | int]
    interventions: dict[str, int]
    achieved_hz: float
    plans: list[str] = field(default_factory=list)
    # the plans with the step each began: [{"step": int, "plan": str}] (runtime/plan_log.py)
    plan_log: list[dict[str, Any]] = field(default_factory=list)
    # the instruction the policy was given: {"task", "instruction_source"[, "env_task"]}
    # (runtime/instruction.py)
    instruction: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    person_steps: int = 0  # steps a person drove (--teleop)
    takeovers: int = 0
    # achieved rate, cycles over budget, ms per stage, the RTC delays (runtime/cadence.py)
    cadence: dict[str, Any] = field(default_factory=dict)


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
        on_event: Callable[[str], None] | None = None,
        policy_name: str = "policy",
        paced: bool = True,
        takeover: Takeover | None = None,
        episode: EpisodeBuffer | None = None,
        viz: RerunLog | None = None,
        commands: CommandStream | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        """``on_event``: receives operator messages as they happen (see the module docstring).
        ``policy_name``: how those messages name the policy, e.g. ``policy server ws://...``.
        ``paced``: keep the control rate in wall time (a robot); False runs steps back to back.
        ``takeover``: a person may take over (see the module docstring); ``episode``: gets
        each step's frame (with the task), the command sent and its ``intervention`` flag.
        ``viz``: gets every step (cameras, state, raw and sent action, interventions, plan;
        ``--display rerun``), stamped with the run's clock (simulated when unpaced).
        ``commands``: ``--command-hz``: each step's filtered action becomes that many
        jerk-limited commands sent over the next period, each through the stream's own
        filter (:mod:`embodied_mm.runtime.command_interpolation`).
        ``clock``: seconds, what stage and step times (and so deadline misses) are measured
        with; pacing keeps wall time whatever it is (tests pass a fake one, unpaced).
        """
        if hz <= 0:
            raise ValueError(f"hz must be positive, got {hz}")
        self.robot = robot
        self.controller = Controller(executor, safety)
        self.executor = executor
        self.safety = safety
        self.paced = paced
        self.hz = hz
        self.period = 1.0 / hz
        self.task = task
        self.recorder = recorder
        self.on_step = on_step
        self.on_event = on_event
        self.policy_name = policy_name
        self.clock = clock
        self.timer = StageTimer(self.period, clock=clock)
        self.step = 0
        self.last_sent: np.ndarray | None = None  # (D,) the command of the last step
        self.error: str | None = None
        self._policy_lost = False
        self._began: float | None = None  # perf_counter at the start of run
        self.takeover = takeover
        self.episode = episode
        self.viz = viz
        self.person_driving = False  # the person drove the last step
        self.commands = commands

    def run(self, max_steps: int) -> LoopResult:
        """Run until ``max_steps``, the end of a sim episode, an e-stop or a watchdog stop."""
        reason = "max_steps"
        plans = PlanLog()
        t_begin = time.perf_counter()
        self._began = t_begin
        next_tick = t_begin
        steps_run = 0
        if self.commands is not None:
            self.commands.reset()
        for _ in range(max_steps):
            t0 = self.clock()
            try:
                safe, raw, obs = self._step()
            except Exception as e:
                # A robot that cannot be read or commanded (bus error, motor alert, camera gone)
                # is brought to rest if it still can be; the error then ends the run.
                self.error = f"{type(e).__name__}: {e}"
                held = True
                try:
                    self.robot.safe_stop()
                except Exception as stop_error:
                    held = False
                    log.warning("safe stop after %s failed: %s", self.error, stop_error)
                self._event(
                    f"error at step {self.step}: {self.error}; "
                    + ("the robot is holding" if held else "no hold could be sent")
                )
                reason = "error"
                break
            plan = self.executor.plan
            plans.note(self.step, plan)
            # read once: the async executor's worker may change it at any moment
            policy_error = self.executor.last_error
            interventions = [i.value for i in safe.interventions]
            self._record(obs.frame, raw, safe.action, interventions, plan, policy_error)
            if self.viz is not None:
                t = time.perf_counter() - t_begin if self.paced else self.step * self.period
                self.viz.log_step(self.step, t, obs.frame, raw, safe.action, interventions,
                                  plan, self._task())  # fmt: skip
            if self.episode is not None and not safe.stop:  # a stop sent the safe stop instead
                frame = {**obs.frame, TASK: self._task()}
                self.episode.add(frame, safe.action, extras={INTERVENTION: self.person_driving})
            self._watch_policy(raw, policy_error)
            steps_run += 1
            self.step += 1
            self.timer.end_step(self.clock() - t0)
            if self.on_step is not None:
                self.on_step(self.step, self)
            if safe.stop:
                reason = "estop" if self.safety.estop.engaged else "watchdog_stop"
                self._event(self._stop_message(reason))
                break
            if self.robot.episode_done:
                reason = "episode_done"
                break
            if self.takeover is not None and self.takeover.end is not None:
                reason = self.takeover.end
                break
            if self.commands is not None and not self._send_commands(next_tick):
                reason = "estop"
                self._event(self._stop_message(reason))
                break
            if not self.paced:
                continue
            next_tick += self.period
            delay = next_tick - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            else:
                next_tick = time.perf_counter()  # overran: restart the schedule, no burst
        elapsed = time.perf_counter() - t_begin
        success = self.robot.info.get("is_success") if self.robot.info else None
        achieved_hz = steps_run / elapsed if elapsed > 0 else float("nan")
        return LoopResult(
            steps=steps_run,
            stop_reason=reason,
            success=None if success is None else bool(success),
            timing={**self.timer.summary(), **self.executor.chunk_stats()},
            interventions=dict(self.safety.counts),
            achieved_hz=achieved_hz,
            plans=plans.texts,
            plan_log=plans.entries,
            instruction=self.instruction().record(),
            error=self.error,
            person_steps=self.takeover.person_steps if self.takeover else 0,
            takeovers=self.takeover.takeovers if self.takeover else 0,
            cadence=cadence_report(self.timer, achieved_hz, self.executor)
            | ({"commands": self.commands.report()} if self.commands is not None else {}),
        )

    def _send_commands(self, tick: float) -> bool:
        """Send the period's interpolated commands at ``tick + (i + 1) * period / n`` (at once
        when unpaced); False when the e-stop stopped them (the robot is at a safe stop)."""
        assert self.commands is not None
        n = self.commands.n
        for i in range(n):
            if self.paced:
                wait = tick + (i + 1) * self.period / n - time.perf_counter()
                if wait > 0:
                    time.sleep(wait)
            if not self.commands.send_next(self.robot):
                return False
        return True

    def _step(self) -> tuple[FilteredAction, np.ndarray | None, RobotObservation]:
        with self.timer.stage("observe"):
            obs = self.robot.get_observation()
        with self.timer.stage("preprocess"):
            frame = dict(obs.frame)
            frame[TASK] = self._task()
        with self.timer.stage("infer"):
            # An e-stop engaged since the last step must not wait for an inference (up to the
            # server timeout in open-loop mode): no action, and the filter holds and stops.
            raw = self._propose(frame)
        with self.timer.stage("postprocess"):
            safe = self.controller.filter(raw, self.robot.hold_action(), obs.stamps)
        with self.timer.stage("act"):
            if safe.stop:
                self.robot.safe_stop()
            elif self.commands is not None:
                self.commands.plan(safe.action)  # sent over the period (run)
            else:
                self.robot.send_action(safe.action)
            self.last_sent = safe.action
        return safe, raw, obs

    def _task(self) -> str:
        return self.task if self.task is not None else (self.robot.task or "")

    def instruction(self) -> Instruction:
        """The instruction the policy is given now: ``task`` (the user's) or the robot's."""
        return Instruction.of(self.task, self.robot.task)

    def _propose(self, frame: dict[str, Any]) -> np.ndarray | None:
        """(D,) this step's command before the filter: the person's when a person drives,
        else the executor's (None: no fresh action)."""
        if self.takeover is None:
            return self.controller.propose(frame)
        read = self.takeover.read(self.robot.hold_action())
        self.person_driving = read.person
        if read.person:
            return read.action
        if read.handed_back:  # a fresh chunk from this observation; the old queue is gone
            self.executor.reset()
        return self.controller.propose(frame)

    def _event(self, message: str) -> None:
        if self.on_event is not None:
            self.on_event(message)
        else:
            log.warning("%s", message)

    def _watch_policy(self, raw: np.ndarray | None, error: str | None) -> None:
        """Report, at the step it happens, that the policy stopped answering (and what the
        robot does meanwhile) or answers again."""
        if error is not None and not self._policy_lost:
            self._policy_lost = True
            doing = (
                "the robot is holding where it is"
                if raw is None
                else "the robot plays the actions already queued, then holds"
            )
            wait = self.safety.config.watchdog_stop_s
            self._event(
                f"{self.policy_name} lost at step {self.step} ({error}): {doing}; "
                f"it stops after {wait:g} s without an action"
            )
        elif error is None and self._policy_lost and raw is not None:
            self._policy_lost = False
            self._event(f"{self.policy_name} answers again at step {self.step}")

    def _stop_message(self, reason: str) -> str:
        if reason == "estop":
            why = f"e-stop ({self.safety.estop.reason or 'engaged'})"
        else:
            wait = self.safety.config.watchdog_stop_s
            why = f"watchdog stop (no action for {wait:g} s)"
        return f"{why} at step {self.step - 1}: the robot is holding where it is"

    def _record(
        self,
        frame: dict[str, Any],
        raw: np.ndarray | None,
        sent: np.ndarray,
        interventions: list[str],
        plan: str | None,
        policy_error: str | None,
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
                "policy_error": policy_error,
                "person": self.person_driving,
                "stage_ms": {k: v[-1] * 1e3 for k, v in self.timer.samples.items() if v},
            }
        )
        cam = self.recorder.camera
        if cam is not None and image_key(cam) in frame:
            self.recorder.add_frame(frame[image_key(cam)])

    def _achieved_hz(self) -> str:
        """`` | 19.6 Hz``: steps per second since the run began ("" before a step)."""
        if self._began is None or self.step == 0:
            return ""
        elapsed = time.perf_counter() - self._began
        return f" | {self.step / elapsed:4.1f} Hz" if elapsed > 0 else ""

    def status_line(self) -> str:
        """One line for the operator: step time, the model's inference time (not the loop's
        wait, which the async executor keeps near zero), the age of the chunk being played
        (steps since its observation), the rate achieved so far, deadline misses,
        interventions, the RTC delay and the plan."""
        p50, p99 = self.timer.percentiles_ms("step")
        model = self.executor.model_ms
        model50 = float(np.percentile(np.fromiter(model, dtype=np.float64), 50)) if model else None
        age = self.executor.chunk_age
        n = sum(self.safety.counts.values())
        plan = (self.executor.plan or "")[:40]
        return (
            f"step {self.step:5d}"
            + self._achieved_hz()
            + (" | PERSON drives" if self.person_driving else "")  # --teleop: taken over
            + f" | step p50 {p50:6.1f} ms p99 {p99:6.1f} ms | model p50 "
            + ("   n/a" if model50 is None else f"{model50:6.1f}")
            + " ms | chunk age "
            + ("n/a" if age is None else f"{age:d} step{'s' if age != 1 else ''}")
            + f" | misses {self.timer.deadline_misses} | interventions {n}"
            + delay_status(self.executor)
            + (f" | plan: {plan}" if plan else "")
        )
