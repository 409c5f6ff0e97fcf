"""The one inverse-kinematics solver, shared by every engine.

An engine only provides forward kinematics and the TCP Jacobian of a kinematic copy of its
robot (:class:`Kinematics`); :func:`solve_ik` does the rest in plain numpy. The answer is
therefore a function of the FK alone: two engines whose robot descriptions agree (the MJCF
and the URDF agree to ~0.005 mm, ``tests/envs/test_robot_descriptions.py``) give the same
joints for the same target, reachable or not.

Why our own solver and not ``mink`` (a maintained differential-IK library): mink is built on
MuJoCo's model and data, so it cannot serve PyBullet, and two solvers cannot promise the same
answer on unreachable targets. What is needed is a few dozen lines of damped least squares.

Algorithm, per iteration (from ``q_init``, clipped into the joint limits):

- error ``e = (target_pos - pos, rotvec(target_quat * conj(quat)))``, both in the world frame
  (metres and radians, unweighted);
- damped least squares ``dq = J^T (J J^T + λ² I)^-1 e`` with ``λ = damping`` while ``|e|`` is
  at most ``free_error``, and ``λ² = damping² + (error_damping * (|e| - free_error))²`` beyond:
  an error-dependent damping in the spirit of Sugihara's Levenberg-Marquardt IK
  (IEEE T-RO 2011, "Solvability-unconcerned inverse kinematics"). Far from any solution the
  plain small-λ step is huge, the step limit below cuts it, and the iterates zigzag around the
  stretched-out arm so chaotically that the engines' ~0.005 mm difference in FK grew into
  joint answers up to 0.67 rad apart (200 targets 1.3-3 m out); the extra damping turns that
  into a smooth descent. ``free_error`` is above the largest error an ``ee_delta`` action can
  ask for (0.069 m and 0.357 rad, ``|e|`` <= 0.364), so tracking is untouched;
- plus a weak pull towards ``home`` in the Jacobian's (damped) null space, so the redundant
  joint does not wander over many calls while tracking;
- the step is scaled down so that no joint moves more than ``max_step`` rad, and the result is
  clipped into the joint limits (every iterate is within limits).

It stops once both errors are under their tolerances, or after ``max_iters`` iterations, and
returns the best iterate seen, the one with the lowest ``|e|`` (the quantity the steps
reduce): on an unreachable target the closest pose found, not wherever the last step happened
to land. There is no randomness, so the same kinematics, target and start give the same
answer every time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from embodied_mm.envs.robot import HOME_Q
from embodied_mm.envs.rotations import quat_error


class Kinematics(Protocol):
    """What the solver needs from an engine, evaluated on a kinematic copy of its robot (never
    the simulated state)."""

    joint_limits: np.ndarray  # (n, 2) rad: [lower, upper] per joint

    def tcp_pose_and_jacobian(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """At joints ``q`` (n,): TCP position (3,) in metres, orientation quaternion (4,)
        (w, x, y, z, either sign), and the world-frame Jacobian (6, n) whose first three rows
        map joint velocities to the TCP's linear velocity and last three to its angular
        velocity."""
        ...


@dataclass(frozen=True)
class IKParams:
    """Settings of :func:`solve_ik`; the defaults are what every engine uses."""

    # λ of damped least squares: small, since the tasks stay away from singularities. With
    # λ = 0.05 the null-space pull stalled the solver at ~1 mm (envs/ENGINE_NOTES.md).
    damping: float = 0.01
    max_iters: int = 50
    tol_pos: float = 1e-4  # m
    tol_rot: float = 1e-3  # rad
    max_step: float = 0.3  # rad per joint per iteration
    home_gain: float = 0.1  # fraction of (home - q) pulled per iteration, in the null space
    free_error: float = 0.4  # |e| (m and rad) up to which λ = damping
    error_damping: float = 2.0  # growth of λ per unit of |e| beyond free_error


@dataclass(frozen=True)
class IKResult:
    """The joints :func:`solve_ik` returns and how well they do."""

    q: np.ndarray  # (n,) rad, within the joint limits
    pos_err: float  # m, |target_pos - FK(q) position|
    rot_err: float  # rad, angle between target_quat and FK(q) orientation
    iterations: int  # FK evaluations done
    converged: bool  # both errors under their tolerances


def solve_ik(
    kin: Kinematics,
    pos: np.ndarray,
    quat: np.ndarray,
    q_init: np.ndarray,
    home: np.ndarray = HOME_Q,
    params: IKParams = IKParams(),
) -> IKResult:
    """Joints within ``kin.joint_limits`` that put the TCP at ``pos`` (3,) with orientation
    ``quat`` (4,) wxyz, starting from ``q_init`` (n,); see the module docstring for the
    algorithm. ``quat`` need not be normalised. Neither ``q_init`` nor ``home`` is modified."""
    lower, upper = kin.joint_limits[:, 0], kin.joint_limits[:, 1]
    target_pos = np.asarray(pos, dtype=np.float64)
    target_quat = np.asarray(quat, dtype=np.float64)
    target_quat = target_quat / np.linalg.norm(target_quat)
    home = np.asarray(home, dtype=np.float64)
    q = np.clip(np.asarray(q_init, dtype=np.float64), lower, upper)
    n = q.shape[0]
    eye6 = np.eye(6)
    best = IKResult(q.copy(), np.inf, np.inf, 0, False)
    best_err = np.inf
    for it in range(1, params.max_iters + 1):
        cur_pos, cur_quat, jac = kin.tcp_pose_and_jacobian(q)
        err = np.concatenate([target_pos - cur_pos, quat_error(target_quat, cur_quat)])  # (6,)
        n_pos, n_rot = float(np.linalg.norm(err[:3])), float(np.linalg.norm(err[3:]))
        n_err = float(np.hypot(n_pos, n_rot))
        converged = n_pos < params.tol_pos and n_rot < params.tol_rot
        if n_err < best_err:
            best_err = n_err
            best = IKResult(q.copy(), n_pos, n_rot, it, converged)
        if converged:
            break
        excess = max(0.0, n_err - params.free_error)
        lam2 = params.damping**2 + (params.error_damping * excess) ** 2
        jjt = jac @ jac.T + lam2 * eye6  # (6, 6)
        dq = jac.T @ np.linalg.solve(jjt, err)  # (n,)
        null = np.eye(n) - jac.T @ np.linalg.solve(jjt, jac)  # (n, n)
        dq += null @ (params.home_gain * (home - q))
        scale = max(1.0, float(np.abs(dq).max()) / params.max_step)
        q = np.clip(q + dq / scale, lower, upper)
    return IKResult(best.q, best.pos_err, best.rot_err, it, best.converged)
