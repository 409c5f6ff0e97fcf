"""An engine-free :class:`embodied_mm.envs.ik.Kinematics` for tests: the Franka Panda's published
(Craig) DH parameters plus the hand and TCP offsets, in plain numpy.

It is a third, independent source of FK and Jacobian next to the two engines, so tests can
check the engines' kinematics interface against it and show that the IK's answer depends on
the kinematics only, not on which engine provides them.
"""

from __future__ import annotations

import math

import numpy as np

from embodied_mm.envs.robot import JOINT_LIMITS

# The published numbers (Franka docs): Craig DH (a_{i-1}, d_i, alpha_{i-1}) per joint; tests/
# envs/test_robot_descriptions.py checks the URDF against them.
DH = (
    (0.0, 0.333, 0.0),
    (0.0, 0.0, -math.pi / 2),
    (0.0, 0.316, math.pi / 2),
    (0.0825, 0.0, math.pi / 2),
    (-0.0825, 0.384, -math.pi / 2),
    (0.0, 0.0, math.pi / 2),
    (0.088, 0.0, math.pi / 2),
)
FLANGE_D = 0.107
TCP_OFFSET = 0.1034
SHOULDER = np.array([0.0, 0.0, 0.333])  # joints 2 (and 1's axis) pass through it
# No TCP is farther from the shoulder than the sum of every offset after it.
MAX_REACH = sum(abs(a) + abs(d) for a, d, _ in DH[1:]) + FLANGE_D + TCP_OFFSET


def _rot_x(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[1, 0, 0, 0], [0, c, -s, 0], [0, s, c, 0], [0, 0, 0, 1.0]])


def _rot_z(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s, 0, 0], [s, c, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1.0]])


def _trans(x: float, y: float, z: float) -> np.ndarray:
    t = np.eye(4)
    t[:3, 3] = (x, y, z)
    return t


def mat_quat(r: np.ndarray) -> np.ndarray:
    """(4,) wxyz quaternion of a rotation matrix (Shepperd's method, w >= 0)."""
    tr = np.trace(r)
    if tr > 0:
        s = 2.0 * math.sqrt(tr + 1.0)
        q = [s / 4, (r[2, 1] - r[1, 2]) / s, (r[0, 2] - r[2, 0]) / s, (r[1, 0] - r[0, 1]) / s]
    else:
        i = int(np.argmax(np.diag(r)))
        j, k = (i + 1) % 3, (i + 2) % 3
        s = 2.0 * math.sqrt(1.0 + r[i, i] - r[j, j] - r[k, k])
        q = [0.0, 0.0, 0.0, 0.0]
        q[0] = (r[k, j] - r[j, k]) / s
        q[1 + i] = s / 4
        q[1 + j] = (r[j, i] + r[i, j]) / s
        q[1 + k] = (r[k, i] + r[i, k]) / s
    quat = np.array(q)
    return quat if quat[0] >= 0 else -quat


def dh_chain(q: np.ndarray) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]:
    """(4, 4) world pose of the TCP, and each joint's world axis (3,) and origin (3,)."""
    t = np.eye(4)
    axes, origins = [], []
    for (a, d, alpha), qi in zip(DH, q, strict=True):
        t = t @ _rot_x(alpha) @ _trans(a, 0, 0)
        axes.append(t[:3, 2].copy())  # joint i turns about this frame's z axis
        origins.append(t[:3, 3].copy())
        t = t @ _rot_z(qi) @ _trans(0, 0, d)
    # flange, then the hand (turned -45° about the flange axis) and its TCP
    t = t @ _trans(0, 0, FLANGE_D) @ _rot_z(-math.pi / 4) @ _trans(0, 0, TCP_OFFSET)
    return t, axes, origins


def dh_tcp(q: np.ndarray) -> np.ndarray:
    """(4, 4) world pose of the TCP from the published DH parameters."""
    return dh_chain(q)[0]


class PandaDH:
    """FK and geometric Jacobian of the TCP from the DH table (the Kinematics protocol)."""

    joint_limits = JOINT_LIMITS

    def tcp_pose_and_jacobian(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        t, axes, origins = dh_chain(q)
        pos = t[:3, 3].copy()
        jac = np.zeros((6, len(DH)))
        for i, (z, o) in enumerate(zip(axes, origins, strict=True)):
            jac[:3, i] = np.cross(z, pos - o)
            jac[3:, i] = z
        return pos, mat_quat(t[:3, :3]), jac
