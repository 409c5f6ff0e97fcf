"""Quaternion helpers (w, x, y, z) in plain numpy, engine-neutral."""

from __future__ import annotations

import numpy as np


def quat_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product ``a ⊗ b`` (apply ``b`` first, then ``a``)."""
    aw, ax, ay, az = a
    bw, bx, by, bz = b
    return np.array(
        [
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ]
    )


def quat_conj(q: np.ndarray) -> np.ndarray:
    return np.array([q[0], -q[1], -q[2], -q[3]])


def rotvec_quat(v: np.ndarray) -> np.ndarray:
    """Quaternion of the rotation vector ``v`` (axis * angle, rad)."""
    angle = float(np.linalg.norm(v))
    if angle < 1e-12:
        return np.array([1.0, 0.0, 0.0, 0.0])
    axis = np.asarray(v) / angle
    return np.concatenate([[np.cos(angle / 2)], np.sin(angle / 2) * axis])


def quat_rotvec(q: np.ndarray) -> np.ndarray:
    """Rotation vector (3,) of a quaternion, taking the short way round."""
    q = np.asarray(q, dtype=float)
    q = q / np.linalg.norm(q)
    if q[0] < 0:
        q = -q
    s = float(np.linalg.norm(q[1:]))
    if s < 1e-12:
        return np.zeros(3)
    return 2.0 * np.arctan2(s, q[0]) * q[1:] / s


def quat_error(target: np.ndarray, current: np.ndarray) -> np.ndarray:
    """World-frame rotation vector that turns ``current`` into ``target``."""
    return quat_rotvec(quat_mul(target, quat_conj(current)))


def yaw_quat(yaw: float) -> np.ndarray:
    """(4,) rotation by ``yaw`` about the world z axis."""
    return np.array([np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)])


def rpy_quat(rpy: np.ndarray) -> np.ndarray:
    """Roll, pitch, yaw about the fixed world x, y, z axes (in that order) as a quaternion."""
    r, p, y = rpy
    qx = np.array([np.cos(r / 2), np.sin(r / 2), 0.0, 0.0])
    qy = np.array([np.cos(p / 2), 0.0, np.sin(p / 2), 0.0])
    return quat_mul(yaw_quat(y), quat_mul(qy, qx))
