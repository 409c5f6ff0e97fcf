"""The safety filter: every action sent to a robot passes through :meth:`SafetyFilter.filter`.

Checks, in order (the first that decides "hold" wins; clipping checks all apply):

0. the hold command itself has NaN or inf (a broken reading of the robot's own state) →
   :class:`NonFiniteHold` is raised: there is no safe command to send, and the loop ends the
   run as an error with nothing sent;
1. e-stop engaged (SIGINT or :meth:`EStop.trigger`) → hold and stop;
2. stale observation: a camera frame older than ``max_obs_age_s`` → hold;
3. watchdog: no fresh action this step → hold; none for ``watchdog_stop_s`` → hold and stop;
4. NaN or inf anywhere in the action → hold;
5. joint / action limits → clip; gripper limits → clip;
6. max per-step change (``max_velocity / hz``) relative to the last command → clip;
7. workspace box: the end-effector position the action leads to lies outside → hold.

"Hold" is the robot's own :meth:`Robot.hold_action` (its current position for
position-controlled arms, a zero delta for end-effector-delta control, the gripper at its last
commanded target in both), so a hold never moves the robot nor loosens a grasp. Each
intervention is counted in :attr:`SafetyFilter.counts` and logged, with the step and the
reason, in :attr:`SafetyFilter.events`.
"""

from __future__ import annotations

import enum
import logging
import signal
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

log = logging.getLogger(__name__)


class Intervention(str, enum.Enum):
    NONFINITE_HOLD = "nonfinite_hold"
    ESTOP = "estop"
    STALE_OBS = "stale_observation"
    WATCHDOG_HOLD = "watchdog_hold"
    WATCHDOG_STOP = "watchdog_stop"
    NONFINITE = "nonfinite_action"
    JOINT_LIMIT = "joint_limit"
    GRIPPER_LIMIT = "gripper_limit"
    MAX_DELTA = "max_delta"
    WORKSPACE = "workspace"


class NonFiniteHold(ValueError):
    """The robot's hold command has NaN/inf: nothing safe can be sent."""


class EStop:
    """An emergency stop latch, triggered by an API call or SIGINT; only :meth:`reset` clears it."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.reason: str | None = None
        self._previous_handler: Any = None

    def trigger(self, reason: str = "api") -> None:
        if not self._event.is_set():
            self.reason = reason
            self._event.set()

    @property
    def engaged(self) -> bool:
        return self._event.is_set()

    def reset(self) -> None:
        self.reason = None
        self._event.clear()

    def install_sigint(self) -> None:
        """Route Ctrl-C to the e-stop (only possible from the main thread)."""
        self._previous_handler = signal.signal(
            signal.SIGINT, lambda signum, frame: self.trigger("SIGINT")
        )

    def uninstall_sigint(self) -> None:
        if self._previous_handler is not None:
            signal.signal(signal.SIGINT, self._previous_handler)
            self._previous_handler = None


@dataclass
class SafetyConfig:
    """Limits for one robot; every array is per action dimension, shape (D,).

    ``action_low/high``: joint limits for joint-position actions, the normalised command range
    for end-effector-delta actions. ``max_velocity`` (units per second) bounds the change
    between consecutive commands; leave it None for delta actions, whose size the limits bound.
    """

    action_low: np.ndarray | None = None  # (D,)
    action_high: np.ndarray | None = None  # (D,)
    gripper_index: int | None = None
    gripper_low: float = -np.inf
    gripper_high: float = np.inf
    max_velocity: np.ndarray | None = None  # (D,) units/s
    workspace_low: np.ndarray | None = None  # (3,) metres
    workspace_high: np.ndarray | None = None  # (3,) metres
    max_obs_age_s: float = 0.25
    watchdog_stop_s: float = 1.0

    def __post_init__(self) -> None:
        for name in (
            "action_low",
            "action_high",
            "max_velocity",
            "workspace_low",
            "workspace_high",
        ):
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, np.asarray(value, dtype=np.float64))
        if (self.workspace_low is None) != (self.workspace_high is None):
            raise ValueError("give both workspace_low and workspace_high, or neither")
        if self.max_velocity is not None and (self.max_velocity <= 0).any():
            raise ValueError("max_velocity must be positive")


@dataclass
class FilteredAction:
    action: np.ndarray  # (D,) what to send
    interventions: list[Intervention] = field(default_factory=list)
    stop: bool = False  # the robot must be brought to a safe stop and the loop end


class SafetyFilter:
    """Stateful filter for one episode on one robot (it remembers the last command)."""

    def __init__(
        self,
        config: SafetyConfig,
        hz: float,
        ee_position_fn: Callable[[np.ndarray], np.ndarray] | None = None,
        estop: EStop | None = None,
        clock: Callable[[], float] = time.monotonic,
        max_events: int = 10_000,
    ) -> None:
        if config.workspace_low is not None and ee_position_fn is None:
            raise ValueError("a workspace box needs ee_position_fn (action -> (3,) TCP position)")
        self.config = config
        self.dt = 1.0 / hz
        self.ee_position_fn = ee_position_fn
        self.estop = estop or EStop()
        self.clock = clock
        self.counts: Counter[str] = Counter()
        self.events: deque[dict[str, Any]] = deque(maxlen=max_events)
        self.step = 0
        self._last_command: np.ndarray | None = None
        self._last_fresh: float | None = None

    def reset(self) -> None:
        """Start of an episode: the counts, the event log, the step number, the watchdog
        clock and the delta reference restart (the limits and the e-stop stay)."""
        self.counts.clear()
        self.events.clear()
        self.step = 0
        self._last_command = None
        self._last_fresh = None

    def _record(self, kind: Intervention, detail: str, out: FilteredAction) -> None:
        self.counts[kind.value] += 1
        self.events.append(
            {"step": self.step, "t": self.clock(), "kind": kind.value, "detail": detail}
        )
        out.interventions.append(kind)
        log.info("safety step %d: %s (%s)", self.step, kind.value, detail)

    def filter(
        self,
        action: np.ndarray | None,
        hold: np.ndarray,
        obs_stamps: Mapping[str, float] | None = None,
    ) -> FilteredAction:
        """Decide what to send this step.

        ``action``: (D,) the policy's command, or None when no fresh action is available.
        ``hold``: (D,) the command that keeps the robot where it is now; NaN/inf in it raises
        :class:`NonFiniteHold` (after counting the intervention).
        ``obs_stamps``: capture time per camera, on the same clock as ``clock``.
        """
        now = self.clock()
        hold = np.asarray(hold, dtype=np.float64)
        out = FilteredAction(action=hold.copy())
        try:
            self._decide(action, hold, obs_stamps or {}, now, out)
        finally:
            self.step += 1
        self._last_command = out.action.copy()
        return out

    def _decide(
        self,
        action: np.ndarray | None,
        hold: np.ndarray,
        obs_stamps: Mapping[str, float],
        now: float,
        out: FilteredAction,
    ) -> None:
        cfg = self.config
        if self._last_fresh is None:
            self._last_fresh = now  # the watchdog starts with the episode
        if not np.isfinite(hold).all():
            bad = np.flatnonzero(~np.isfinite(hold)).tolist()
            detail = f"the robot's hold command has NaN/inf in dims {bad}"
            self._record(Intervention.NONFINITE_HOLD, detail, out)
            raise NonFiniteHold(f"{detail}; nothing sent")
        if self.estop.engaged:
            self._record(Intervention.ESTOP, self.estop.reason or "engaged", out)
            out.stop = True
            return
        stale = {c: now - t for c, t in obs_stamps.items() if now - t > cfg.max_obs_age_s}
        if stale:
            ages = ", ".join(f"{c} {age * 1e3:.0f} ms" for c, age in sorted(stale.items()))
            self._record(Intervention.STALE_OBS, f"frame age {ages}", out)
            return
        if action is None:
            idle = now - self._last_fresh
            if idle > cfg.watchdog_stop_s:
                self._record(Intervention.WATCHDOG_STOP, f"no fresh action for {idle:.2f} s", out)
                out.stop = True
            else:
                self._record(Intervention.WATCHDOG_HOLD, f"no fresh action for {idle:.2f} s", out)
            return
        self._last_fresh = now
        action = np.asarray(action, dtype=np.float64)
        if action.shape != hold.shape:
            raise ValueError(f"action has shape {action.shape}, the robot takes {hold.shape}")
        if not np.isfinite(action).all():
            bad = np.flatnonzero(~np.isfinite(action)).tolist()
            self._record(Intervention.NONFINITE, f"NaN/inf in dims {bad}", out)
            return
        cmd = action.copy()
        if cfg.action_low is not None or cfg.action_high is not None:
            low = cfg.action_low if cfg.action_low is not None else -np.inf
            high = cfg.action_high if cfg.action_high is not None else np.inf
            clipped = np.clip(cmd, low, high)
            dims = np.flatnonzero(clipped != cmd)
            if cfg.gripper_index is not None:
                dims = dims[dims != cfg.gripper_index % len(cmd)]
            if dims.size:
                self._record(Intervention.JOINT_LIMIT, f"clipped dims {dims.tolist()}", out)
            cmd = clipped
        if cfg.gripper_index is not None:
            requested = float(action[cfg.gripper_index])
            gc = float(np.clip(cmd[cfg.gripper_index], cfg.gripper_low, cfg.gripper_high))
            if gc != requested:
                self._record(
                    Intervention.GRIPPER_LIMIT, f"gripper {requested:.3f} -> {gc:.3f}", out
                )
            cmd[cfg.gripper_index] = gc
        if cfg.max_velocity is not None:
            ref = self._last_command if self._last_command is not None else hold
            step = cfg.max_velocity * self.dt
            limited = np.clip(cmd, ref - step, ref + step)
            dims = np.flatnonzero(np.abs(limited - cmd) > 1e-12)
            if dims.size:
                self._record(Intervention.MAX_DELTA, f"rate-limited dims {dims.tolist()}", out)
            cmd = limited
        if cfg.workspace_low is not None and self.ee_position_fn is not None:
            pos = np.asarray(self.ee_position_fn(cmd), dtype=np.float64)
            if (pos < cfg.workspace_low).any() or (pos > cfg.workspace_high).any():
                self._record(
                    Intervention.WORKSPACE,
                    f"TCP target {np.round(pos, 3).tolist()} outside box",
                    out,
                )
                return
        out.action = cmd
