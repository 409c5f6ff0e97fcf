"""How smooth an executed trajectory is, and whether chunk boundaries show in it.

- :func:`boundary_ratio`: the mean action change at chunk boundaries (the steps where a new
  chunk's action is played for the first time, coming from the step before: the old chunk's
  last action, or a hold) over the median change within chunks (between two actions of one
  chunk; a hold is in no chunk).
  1.0 means the boundaries are invisible; a cross-fade between disagreeing plans or a chunk
  that ignores what was executed shows as a ratio well above 1. The mean at the boundaries
  (not the median) so that an occasional large jump counts; the median within so that the
  reference is the typical step.
- :func:`rms_jerk`: the root mean square of the third finite difference of a commanded
  trajectory (T, J) sampled every ``dt`` seconds, ``sqrt(mean_t |d³q/dt³|²)`` with the norm
  over the J dimensions, in units per s³.

Both take plain arrays, so they apply to actions as sent, interpolated commands, or joint
positions as measured. :class:`EpisodeMotion` collects an eval episode's: the boundary ratio
of the actions sent, and the RMS jerk of the arm's joint positions (the state's ``joints``
group, rad) after each control step. In simulation the env's own controller turns each
command into joint motion within the step, so the measured joints are the joint trajectory
the commands produced.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def chunk_boundaries(chunk_steps: Sequence[int | None]) -> list[int]:
    """The steps where a chunk other than the last one played takes over: ``chunk_steps[t]``
    is the step whose observation the chunk played at step t was computed from (None: none
    played, a hold). The episode's first chunk is no boundary."""
    out: list[int] = []
    last: int | None = None
    for t, chunk in enumerate(chunk_steps):
        if chunk is None:
            continue
        if last is not None and chunk != last:
            out.append(t)
        last = chunk
    return out


def action_changes(actions: np.ndarray) -> np.ndarray:
    """(T-1,) the Euclidean norm of ``actions[t] - actions[t-1]`` for t = 1..T-1; ``actions``
    (T, D)."""
    a = np.asarray(actions, dtype=np.float64)
    if a.ndim != 2:
        raise ValueError(f"actions must be (T, D); got shape {a.shape}")
    return np.linalg.norm(np.diff(a, axis=0), axis=1)


def within_chunk_steps(chunk_steps: Sequence[int | None]) -> list[int]:
    """The steps t >= 1 that play the same chunk as step t-1 (a hold, None, is in no chunk)."""
    return [
        t
        for t in range(1, len(chunk_steps))
        if chunk_steps[t] is not None and chunk_steps[t] == chunk_steps[t - 1]
    ]


def boundary_ratio(
    actions: np.ndarray,
    boundaries: Sequence[int],
    within: Sequence[int] | None = None,
    at_boundaries: str = "mean",
) -> float | None:
    """The ``at_boundaries`` statistic (``mean`` or ``median``) of the change at the
    ``boundaries`` (steps t >= 1: the change from t-1 to t) over the median change at the
    ``within`` steps (default: every other step); None when either set is empty or the
    within-chunk median is 0 (a trajectory that does not move inside chunks has no scale).

    The mean counts an occasional large jump; the median compares like with like, so that
    boundaries drawn from the same distribution as the steps within chunks give 1.0 even
    when that distribution is heavy-tailed (a policy's actions change little for most steps
    and a lot where a motion phase ends, and the mean over median of such steps is well
    above 1 wherever they are)."""
    if at_boundaries not in ("mean", "median"):
        raise ValueError(f"at_boundaries must be mean or median, got {at_boundaries!r}")
    changes = action_changes(actions)  # changes[t - 1] is the change into step t
    at = sorted({int(t) for t in boundaries if 1 <= t < len(changes) + 1})
    if within is None:
        inside = sorted(set(range(1, len(changes) + 1)) - set(at))
    else:
        inside = sorted({int(t) for t in within if 1 <= t < len(changes) + 1} - set(at))
    if not at or not inside:
        return None
    reference = float(np.median(changes[[t - 1 for t in inside]]))
    if reference == 0.0:
        return None
    jumps = changes[[t - 1 for t in at]]
    return float((jumps.mean() if at_boundaries == "mean" else np.median(jumps)) / reference)


def rms_jerk(positions: np.ndarray, dt: float) -> float | None:
    """RMS of the jerk (third finite difference / dt³, norm over dimensions) of a trajectory
    ``positions`` (T, J) sampled every ``dt`` s; None with fewer than 4 samples."""
    if dt <= 0:
        raise ValueError(f"dt must be positive, got {dt}")
    q = np.asarray(positions, dtype=np.float64)
    if q.ndim != 2:
        raise ValueError(f"positions must be (T, J); got shape {q.shape}")
    if len(q) < 4:
        return None
    jerk = np.diff(q, n=3, axis=0) / dt**3  # (T-3, J)
    return float(np.sqrt(np.mean(np.sum(jerk**2, axis=1))))


def joint_dims(state_dim: int) -> list[int] | None:
    """The ``joints`` dims of the registered robot layout with this state size (None: no
    layout matches)."""
    from embodied_mm.processor.robots import ROBOTS, robot_layout

    for name in ROBOTS.names():
        layout = robot_layout(name)
        if layout.state_dim == state_dim and "joints" in layout.groups:
            return layout.dims("joints")
    return None


def arm_action_dims(action_mode: str) -> list[int] | None:
    """The action dims of the suite's envs in ``action_mode`` that move the arm (all but the
    gripper's); None for a mode the envs do not name."""
    from embodied_mm.envs.tabletop_env import ACTION_FIELDS

    fields = ACTION_FIELDS.get(action_mode)
    return None if fields is None else [i for i, f in enumerate(fields) if "gripper" not in f]


class EpisodeMotion:
    """One episode's actions sent, the chunk each came from and the joints reached."""

    def __init__(self, state: np.ndarray, arm_dims: Sequence[int] | None = None) -> None:
        """``state`` (S,): the observation the episode starts from; ``arm_dims``: the action
        dims that move the arm (not the gripper), for ``arm_boundary_ratio``."""
        self._dims = joint_dims(len(state))
        self._arm = None if arm_dims is None else list(arm_dims)
        self.actions: list[np.ndarray] = []
        self.chunk_steps: list[int | None] = []
        self.joints: list[np.ndarray] = [] if self._dims is None else [self._joints(state)]

    def _joints(self, state: np.ndarray) -> np.ndarray:
        return np.asarray(state, dtype=np.float64)[self._dims]

    def sent(self, action: np.ndarray, chunk_step: int | None) -> None:
        """The command of a step and the step whose observation its chunk came from (None:
        a hold, no chunk's action)."""
        self.actions.append(np.asarray(action, dtype=np.float64))
        self.chunk_steps.append(chunk_step)

    def reached(self, state: np.ndarray) -> None:
        """The state after the step."""
        if self._dims is not None:
            self.joints.append(self._joints(state))

    def figures(self, dt: float) -> dict[str, float | int | None]:
        """``boundaries``, ``boundary_ratio`` (every action dim), ``arm_boundary_ratio`` (the
        arm's dims: a gripper command flips from open to closed in one step wherever the
        policy decides to grasp, often where a new chunk starts, and would swamp the arm's
        motion; None without ``arm_dims``), ``arm_median_boundary_ratio`` (the same with the
        median at the boundaries: 1.0 when they look like any other step) and
        ``joint_rms_jerk`` (rad/s³)."""
        actions = np.stack(self.actions) if self.actions else np.zeros((0, 1))
        boundaries = chunk_boundaries(self.chunk_steps)
        within = within_chunk_steps(self.chunk_steps)
        moving = len(actions) > 1
        arm = actions[:, self._arm] if moving and self._arm else None
        return {
            "boundaries": len(boundaries),
            "boundary_ratio": boundary_ratio(actions, boundaries, within) if moving else None,
            "arm_boundary_ratio": None if arm is None else boundary_ratio(arm, boundaries, within),
            "arm_median_boundary_ratio": (
                None if arm is None else boundary_ratio(arm, boundaries, within, "median")
            ),
            "joint_rms_jerk": rms_jerk(np.stack(self.joints), dt) if self.joints else None,
        }


def smoothness(
    actions: np.ndarray, chunk_steps: Sequence[int | None], dt: float
) -> dict[str, float | int | None]:
    """An episode's figures: ``boundary_ratio``, ``rms_jerk`` of the actions and the number
    of ``boundaries``."""
    boundaries = chunk_boundaries(chunk_steps)
    return {
        "boundaries": len(boundaries),
        "boundary_ratio": boundary_ratio(actions, boundaries),
        "rms_jerk": rms_jerk(actions, dt),
    }


def task_smoothness(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """A task's smoothness from its episode records (their ``smoothness`` entries): the mean
    and median ``boundary_ratio`` over the episodes that have one (``boundary_ratio_n``), and
    the mean ``joint_rms_jerk``; ``{}`` when no record has figures."""
    figures = [r["smoothness"] for r in records if r.get("smoothness")]
    if not figures:
        return {}
    ratios = [f["boundary_ratio"] for f in figures if f.get("boundary_ratio") is not None]
    arm = [f["arm_boundary_ratio"] for f in figures if f.get("arm_boundary_ratio") is not None]
    typical = [
        f["arm_median_boundary_ratio"]
        for f in figures
        if f.get("arm_median_boundary_ratio") is not None
    ]
    jerks = [f["joint_rms_jerk"] for f in figures if f.get("joint_rms_jerk") is not None]

    def rounded(values: list[float], how: Any) -> float | None:
        return round(float(how(values)), 4) if values else None

    return {
        "boundary_ratio_mean": rounded(ratios, np.mean),
        "boundary_ratio_median": rounded(ratios, np.median),
        "boundary_ratio_n": len(ratios),
        "arm_boundary_ratio_mean": rounded(arm, np.mean),
        "arm_boundary_ratio_median": rounded(arm, np.median),
        "arm_median_boundary_ratio_mean": rounded(typical, np.mean),
        "joint_rms_jerk_mean": rounded(jerks, np.mean),
    }
