"""Commands at a multiple of the policy's action rate (``--command-hz``), jerk-limited.

A policy that emits actions at 20 Hz, sent as they are, moves a position-controlled arm in
20 Hz steps that its servo loop turns into a jerk at every step. :class:`CommandInterpolator`
sends ``command_hz / action_hz`` commands per action instead, sampled from a jerk-limited
trajectory computed by `ruckig <https://github.com/pantor/ruckig>`_ (time-optimal, and
here stretched to exactly one action period with ``minimum_duration``): from the state
(position, velocity, acceleration) the previous period ended in, to the new action, arriving
with the velocity of the last two actions (a backward difference, so nothing waits for a
future action) and zero acceleration. The last command of each period is the action itself:
every policy action is reached at its scheduled time whenever the limits allow it within one
period. When they do not (a jump larger than the jerk, acceleration and velocity limits can
cover in one period), the period's commands follow the trajectory as far as it got, the
limits hold, the next action re-plans from there, and :attr:`CommandInterpolator.late`
counts the action.

Only absolute position actions can be interpolated (joint or end-effector targets, the
gripper included); delta actions are increments, not positions. Each command goes through
the safety filter like any other (the caller's business: see
:class:`~embodied_mm.runtime.loop.ControllerLoop`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from ruckig import InputParameter, Result, Ruckig, Trajectory


def commands_per_action(command_hz: float, action_hz: float) -> int:
    """``command_hz / action_hz`` as an int >= 1; a ValueError when it is not a multiple."""
    if command_hz <= 0 or action_hz <= 0:
        raise ValueError(f"rates must be positive, got {command_hz} and {action_hz}")
    ratio = command_hz / action_hz
    n = round(ratio)
    if n < 1 or abs(ratio - n) > 1e-9:
        raise ValueError(
            f"--command-hz must be a whole multiple of the action rate {action_hz:g} Hz, "
            f"got {command_hz:g}"
        )
    return n


class CommandInterpolator:
    """Jerk-limited sub-commands between successive actions (see the module docstring).

    Limits are per dimension (a scalar applies to all): ``max_velocity`` (units/s),
    ``max_acceleration`` (units/s²), ``max_jerk`` (units/s³)."""

    def __init__(
        self,
        dofs: int,
        action_hz: float,
        command_hz: float,
        max_velocity: float | Sequence[float],
        max_acceleration: float | Sequence[float],
        max_jerk: float | Sequence[float],
    ) -> None:
        self.dofs = dofs
        self.n = commands_per_action(command_hz, action_hz)
        self.period = 1.0 / action_hz
        self.dt = self.period / self.n
        self.max_velocity = self._limit("max_velocity", max_velocity)
        self.max_acceleration = self._limit("max_acceleration", max_acceleration)
        self.max_jerk = self._limit("max_jerk", max_jerk)
        self._otg = Ruckig(dofs)
        self._state: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # p, v, a (J,)
        self._last_target: np.ndarray | None = None
        self.late = 0  # actions not reached within their period

    def _limit(self, name: str, value: float | Sequence[float]) -> np.ndarray:
        arr = np.broadcast_to(np.asarray(value, dtype=np.float64), (self.dofs,)).copy()
        if not (np.isfinite(arr) & (arr > 0)).all():
            raise ValueError(f"{name} must be positive and finite, got {value}")
        return arr

    def reset(self, position: np.ndarray | None = None) -> None:
        """Start again at rest at ``position`` (J,) (None: at the first action)."""
        self._last_target = None
        self.late = 0
        if position is None:
            self._state = None
            return
        p = np.asarray(position, dtype=np.float64).reshape(self.dofs)
        self._state = (p, np.zeros(self.dofs), np.zeros(self.dofs))

    def plan(self, action: np.ndarray) -> np.ndarray:
        """The ``n`` commands (n, J) of the period that ends at ``action`` (J,): command i is
        for ``(i + 1) * dt`` s after the period starts, the last is ``action`` when it could
        be reached in time. The first action of an episode (no state yet) is sent as is."""
        target = np.asarray(action, dtype=np.float64).reshape(self.dofs)
        if self._state is None:
            self._state = (target.copy(), np.zeros(self.dofs), np.zeros(self.dofs))
            self._last_target = target.copy()
            return np.repeat(target[None], self.n, axis=0)
        prev = self._last_target if self._last_target is not None else self._state[0]
        velocity = np.clip((target - prev) / self.period, -self.max_velocity, self.max_velocity)
        trajectory = self._trajectory(target, velocity)
        on_time = trajectory.duration <= self.period + 1e-9
        out = np.empty((self.n, self.dofs))
        for i in range(self.n):
            t = (i + 1) * self.dt
            p, v, a = trajectory.at_time(min(t, trajectory.duration))
            out[i] = p
        if on_time:
            out[-1] = target  # exactly the action at its time (ruckig lands on it to ~1e-12)
            self._state = (target.copy(), velocity.copy(), np.zeros(self.dofs))
        else:
            self.late += 1
            p, v, a = trajectory.at_time(self.period)
            self._state = (np.asarray(p), np.asarray(v), np.asarray(a))
        self._last_target = target.copy()
        return out

    def _trajectory(self, target: np.ndarray, velocity: np.ndarray) -> Trajectory:
        assert self._state is not None
        p, v, a = self._state
        inp = InputParameter(self.dofs)
        inp.current_position, inp.current_velocity, inp.current_acceleration = p, v, a
        inp.target_position = target
        inp.target_velocity = velocity
        inp.target_acceleration = np.zeros(self.dofs)
        inp.max_velocity = self.max_velocity
        inp.max_acceleration = self.max_acceleration
        inp.max_jerk = self.max_jerk
        inp.minimum_duration = self.period
        trajectory = Trajectory(self.dofs)
        result = self._otg.calculate(inp, trajectory)
        if result not in (Result.Working, Result.Finished):
            raise RuntimeError(f"ruckig could not plan to the action: {result}")
        return trajectory


class CommandStream:
    """What the controller loop sends between two actions under ``--command-hz``: the
    interpolator's commands of the period, each through its own safety filter (at the
    command rate, sharing the loop's e-stop) right before it is sent.

    ``safety``: a :class:`~embodied_mm.runtime.safety.SafetyFilter` built for
    ``command_hz``; its interventions are the commands' (``interventions``)."""

    def __init__(self, interpolator: CommandInterpolator, safety: Any) -> None:
        self.interpolator = interpolator
        self.safety = safety
        self._pending: list[np.ndarray] = []
        self._last: np.ndarray | None = None
        self.sent = 0

    @property
    def n(self) -> int:
        return self.interpolator.n

    @property
    def interventions(self) -> dict[str, int]:
        return dict(self.safety.counts)

    def reset(self) -> None:
        """A new episode (or after a stop): start again from the next action."""
        self.interpolator.reset()
        self.safety.reset()
        self._pending = []
        self._last = None
        self.sent = 0

    def plan(self, action: np.ndarray) -> None:
        """The period's commands towards ``action`` (D,), the last one ``action`` itself."""
        self._pending = list(self.interpolator.plan(action))

    def send_next(self, robot: Any) -> bool:
        """Filter and send the next command of the period (nothing when none is left);
        False when the filter stopped (an e-stop): the robot was brought to a safe stop."""
        if not self._pending:
            return True
        command = self._pending.pop(0)
        hold = self._last if self._last is not None else command
        safe = self.safety.filter(command, hold)
        if safe.stop:
            self._pending = []
            robot.safe_stop()
            return False
        robot.send_action(safe.action)
        self._last = safe.action
        self.sent += 1
        return True

    def report(self) -> dict[str, Any]:
        """The episode's ``cadence.commands`` entry."""
        return {
            "per_action": self.n,
            "sent": self.sent,
            "late_actions": self.interpolator.late,
            "interventions": self.interventions,
        }
