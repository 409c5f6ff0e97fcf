"""The controller: what stands between a policy and one robot, the same for every command.

A :class:`Controller` is a chunk executor (when to infer, which action of which chunk plays
this step) followed by the safety filter (what may be sent), with the filter's per-episode
intervention counts. ``deploy`` (through :class:`~embodied_mm.runtime.loop.ControllerLoop`),
``rollout``, ``demo`` and ``eval`` (one controller per vector-env slot) all step the robot
through :meth:`Controller.step`, so a success rate measured in simulation is that of the
stack a robot runs.

Time. On a robot the filter's clock is the wall clock and camera frames carry capture stamps.
In simulation (:func:`sim_controller`) the filter runs on a :class:`StepClock`, which moves
by one control period per step: a simulated frame is rendered at the step it belongs to, so
it is never stale, and the watchdog counts steps, not seconds of inference. Together with a
deterministic executor (every mode, with a simulated latency: :class:`ControlSpec`)
the same seed then gives the same episode, however loaded the machine is.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from embodied_mm.errors import UsageError, require_positive
from embodied_mm.runtime.chunking import MODES, ChunkExecutor, make_executor
from embodied_mm.runtime.inference import ChunkSource
from embodied_mm.runtime.robot import Robot
from embodied_mm.runtime.safety import FilteredAction, SafetyConfig, SafetyFilter


class StepClock:
    """Simulated time: ``step / hz`` seconds, advanced by :meth:`tick` once per control step."""

    def __init__(self, hz: float) -> None:
        if hz <= 0:
            raise ValueError(f"hz must be positive, got {hz}")
        self.period = 1.0 / hz
        self.steps = 0

    def __call__(self) -> float:
        return self.steps * self.period

    def tick(self) -> None:
        self.steps += 1

    def reset(self) -> None:
        self.steps = 0


class Controller:
    """A chunk executor behind a safety filter, for one robot (or one simulated env).

    The filter's clock decides the time base: a :class:`StepClock` means simulated time (the
    controller ticks it after every step and ignores camera stamps); any other clock is wall
    time and stamps are checked for staleness.
    """

    def __init__(self, executor: ChunkExecutor, safety: SafetyFilter) -> None:
        self.executor = executor
        self.safety = safety

    @property
    def simulated_time(self) -> bool:
        return isinstance(self.safety.clock, StepClock)

    @property
    def interventions(self) -> dict[str, int]:
        """This episode's interventions by kind (``joint_limit``, ``workspace``, ...)."""
        return dict(self.safety.counts)

    def reset(self) -> None:
        """Start an episode: the executor (and its policy), the filter's counts and state, and
        the simulated clock restart."""
        self.executor.reset()
        self.safety.reset()
        if isinstance(self.safety.clock, StepClock):
            self.safety.clock.reset()

    def propose(self, frame: dict[str, Any]) -> np.ndarray | None:
        """(D,) the executor's action for this step, or None (no fresh action). An engaged
        e-stop skips inference, which may take up to a server timeout."""
        return None if self.safety.estop.engaged else self.executor.next_action(frame)

    def filter(
        self,
        raw: np.ndarray | None,
        hold: np.ndarray,
        stamps: Mapping[str, float] | None = None,
    ) -> FilteredAction:
        """What to send this step: ``raw`` (D,) through the safety filter; ``hold`` (D,) the
        robot's hold command; ``stamps`` camera capture times (wall time only)."""
        if not self.simulated_time:
            return self.safety.filter(raw, hold, stamps)
        try:
            return self.safety.filter(raw, hold)
        finally:
            self.safety.clock.tick()

    def step(
        self,
        frame: dict[str, Any],
        hold: np.ndarray,
        stamps: Mapping[str, float] | None = None,
    ) -> tuple[np.ndarray | None, FilteredAction]:
        """One control step: (the executor's raw action or None, the filtered command)."""
        raw = self.propose(frame)
        return raw, self.filter(raw, hold, stamps)

    def close(self) -> None:
        self.executor.close()


@dataclass(frozen=True)
class ControlSpec:
    """How a sim episode is controlled: the ``--mode`` and its knobs, and the control rate.

    ``latency_steps``: the simulated policy latency, in control steps: a chunk asked for at
    step t can be played from step t + ``latency_steps``. In ``async`` and ``rtc`` modes the
    queue keeps playing meanwhile (default 1: the answer comes within a control period); in
    ``open_loop`` and ``ensemble`` the control loop waits for it, as theirs does on a robot,
    so the arm holds for that many steps at every inference (default 0: inference takes no
    time). None: the mode's default (:attr:`latency`).
    """

    mode: str = "open_loop"
    hz: float = 20.0
    refill_at: int = 4
    latency_steps: int | None = None
    n_action_steps: int | None = None

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise UsageError(f"unknown execution mode {self.mode!r}; known: {', '.join(MODES)}")
        require_positive("hz", self.hz)
        if self.refill_at < 0:
            raise UsageError(f"refill_at must be >= 0, got {self.refill_at}")
        if self.latency_steps is not None and self.latency_steps < 0:
            raise UsageError(f"latency_steps must be >= 0, got {self.latency_steps}")
        if self.n_action_steps is not None:
            if self.mode != "open_loop":
                raise UsageError(f"n_action_steps applies to mode open_loop, not {self.mode!r}")
            if self.n_action_steps < 1:
                raise UsageError(f"n_action_steps must be >= 1, got {self.n_action_steps}")

    @property
    def latency(self) -> int:
        """``latency_steps``, or the mode's default: 1 for async and rtc, 0 otherwise."""
        if self.latency_steps is not None:
            return self.latency_steps
        return 1 if self.mode in ("async", "rtc") else 0

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mode": self.mode, "hz": self.hz}
        if self.mode in ("async", "rtc"):
            out |= {"refill_at": self.refill_at, "latency_steps": self.latency}
        elif self.latency:
            out["latency_steps"] = self.latency
        if self.mode == "open_loop":
            out["n_action_steps"] = self.n_action_steps
        return out


def sim_controller(
    spec: ControlSpec,
    source: ChunkSource,
    limits: SafetyConfig,
    ee_position_fn: Callable[[np.ndarray], np.ndarray] | None,
) -> Controller:
    """The controller of a simulated episode: ``spec``'s executor over ``source`` and the
    filter with the sim robot's ``limits``, in simulated time (see the module docstring)."""
    executor = make_executor(
        spec.mode,
        source,
        spec.refill_at,
        n_action_steps=spec.n_action_steps,
        latency_steps=spec.latency,
        hz=spec.hz,
    )
    return Controller(
        executor, SafetyFilter(limits, spec.hz, ee_position_fn, clock=StepClock(spec.hz))
    )


def robot_sim_controller(spec: ControlSpec, source: ChunkSource, robot: Robot) -> Controller:
    """:func:`sim_controller` with a (connected) robot's own limits and workspace check."""
    return sim_controller(spec, source, robot.default_safety(), robot.ee_position_fn())
