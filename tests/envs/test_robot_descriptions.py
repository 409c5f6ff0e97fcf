"""The URDF and the MJCF describe the same Panda-kinematics robot.

The URDF is checked against the Franka Panda's published (Craig) DH parameters, and the MJCF,
once it exists, against the URDF: TCP pose at random joint configurations, joint limits, home.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pybullet as p
import pytest

from embodied_mm import sim_assets
from embodied_mm.envs.engines.pybullet_engine import ARM_JOINTS, FINGER_JOINTS, TCP_LINK
from embodied_mm.envs.robot import FINGER_TRAVEL, HOME_Q, JOINT_LIMITS
from tests.envs.panda_dh import dh_tcp

ROBOTS = Path(sim_assets.__file__).parent / "robots"
URDF = ROBOTS / "panda.urdf"
SRDF = ROBOTS / "panda.srdf"
MJCF = ROBOTS / "panda.xml"

# Joint limits and home pose: the values envs/robot.py states for the Python side.
LOWER, UPPER = JOINT_LIMITS[:, 0], JOINT_LIMITS[:, 1]
HOME = HOME_Q
FINGER_RANGE = (0.0, FINGER_TRAVEL)


def _rot_angle(r_a: np.ndarray, r_b: np.ndarray) -> float:
    """Angle (rad) of the rotation between two rotation matrices."""
    c = (np.trace(r_a.T @ r_b) - 1.0) / 2.0
    return math.acos(float(np.clip(c, -1.0, 1.0)))


@pytest.fixture(scope="module")
def urdf_robot():
    cid = p.connect(p.DIRECT)
    body = p.loadURDF(str(URDF), useFixedBase=True, physicsClientId=cid)
    index = {}
    for j in range(p.getNumJoints(body, physicsClientId=cid)):
        info = p.getJointInfo(body, j, physicsClientId=cid)
        index[info[1].decode()] = j
        index[info[12].decode()] = j
    yield cid, body, index
    p.disconnect(cid)


def urdf_tcp(robot, q: np.ndarray) -> np.ndarray:
    cid, body, index = robot
    for name, v in zip(ARM_JOINTS, q, strict=True):
        p.resetJointState(body, index[name], float(v), physicsClientId=cid)
    s = p.getLinkState(body, index[TCP_LINK], computeForwardKinematics=True, physicsClientId=cid)
    t = np.eye(4)
    t[:3, :3] = np.asarray(p.getMatrixFromQuaternion(s[5])).reshape(3, 3)
    t[:3, 3] = s[4]
    return t


def random_configs(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(LOWER, UPPER, size=(n, 7))  # (n, 7)


def test_urdf_fk_matches_published_dh(urdf_robot):
    for q in [HOME, *random_configs(50)]:
        want, got = dh_tcp(q), urdf_tcp(urdf_robot, q)
        assert np.linalg.norm(got[:3, 3] - want[:3, 3]) < 1e-5, q
        assert _rot_angle(got[:3, :3], want[:3, :3]) < 1e-4, q


def test_urdf_home_tcp_points_down(urdf_robot):
    t = urdf_tcp(urdf_robot, HOME)
    np.testing.assert_allclose(t[:3, 3], [0.307, 0.0, 0.487], atol=1e-3)
    np.testing.assert_allclose(t[:3, 2], [0.0, 0.0, -1.0], atol=1e-3)  # approach axis


def test_urdf_joint_limits(urdf_robot):
    cid, body, index = urdf_robot
    lims = np.array(
        [p.getJointInfo(body, index[n], physicsClientId=cid)[8:10] for n in ARM_JOINTS]
    )  # (7, 2)
    np.testing.assert_allclose(lims[:, 0], LOWER)
    np.testing.assert_allclose(lims[:, 1], UPPER)
    for n in FINGER_JOINTS:
        info = p.getJointInfo(body, index[n], physicsClientId=cid)
        assert info[2] == p.JOINT_PRISMATIC
        assert info[8:10] == FINGER_RANGE


def test_urdf_links_have_positive_inertia():
    root = ET.parse(URDF).getroot()
    for link in root.iter("link"):
        inertial = link.find("inertial")
        assert inertial is not None, link.get("name")
        assert float(inertial.find("mass").get("value")) > 0
        i = inertial.find("inertia")
        diag = [float(i.get(k)) for k in ("ixx", "iyy", "izz")]
        assert min(diag) > 0, link.get("name")
        # triangle inequality: a physical rigid body's principal moments
        assert diag[0] + diag[1] >= diag[2] and diag[1] + diag[2] >= diag[0], link.get("name")


def srdf_home() -> np.ndarray:
    root = ET.parse(SRDF).getroot()
    state = next(s for s in root.iter("group_state") if s.get("name") == "home")
    values = {j.get("name"): float(j.get("value")) for j in state.iter("joint")}
    return np.array([values[n] for n in ARM_JOINTS])


def test_published_numbers():
    np.testing.assert_allclose(
        LOWER, [-2.8973, -1.7628, -2.8973, -3.0718, -2.8973, -0.0175, -2.8973]
    )
    np.testing.assert_allclose(UPPER, [2.8973, 1.7628, 2.8973, -0.0698, 2.8973, 3.7525, 2.8973])
    np.testing.assert_allclose(HOME, [0.0, -0.785, 0.0, -2.356, 0.0, 1.571, 0.785])
    assert FINGER_RANGE == (0.0, 0.04)


def test_srdf_home_pose():
    np.testing.assert_allclose(srdf_home(), HOME)
    assert np.all(HOME >= LOWER) and np.all(HOME <= UPPER)


# --- the MJCF (written by the MuJoCo side) against the URDF -------------------------------


@pytest.fixture(scope="module")
def mjcf_model():
    assert MJCF.exists(), f"{MJCF} is missing: the MuJoCo Panda is shipped with the repository"
    import mujoco

    model = mujoco.MjModel.from_xml_path(str(MJCF))
    return model


def _mj_arm_joints(model) -> list[int]:
    import mujoco

    hinges = [j for j in range(model.njnt) if model.jnt_type[j] == mujoco.mjtJoint.mjJNT_HINGE]
    assert len(hinges) == 7, f"{MJCF} should have 7 hinge joints, has {len(hinges)}"
    return hinges


def _mj_tcp(model, data, q: np.ndarray) -> np.ndarray:
    import mujoco

    for j, v in zip(_mj_arm_joints(model), q, strict=True):
        data.qpos[model.jnt_qposadr[j]] = v
    mujoco.mj_kinematics(model, data)
    sid = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SITE, "tcp")
    assert sid >= 0, f"{MJCF} has no site named 'tcp'"
    t = np.eye(4)
    t[:3, :3] = data.site_xmat[sid].reshape(3, 3)
    t[:3, 3] = data.site_xpos[sid]
    return t


def test_mjcf_fk_matches_urdf(urdf_robot, mjcf_model):
    import mujoco

    data = mujoco.MjData(mjcf_model)
    pos_err, rot_err = [], []
    for q in [HOME, *random_configs(100, seed=1)]:
        a, b = urdf_tcp(urdf_robot, q), _mj_tcp(mjcf_model, data, q)
        pos_err.append(float(np.linalg.norm(a[:3, 3] - b[:3, 3])))
        rot_err.append(_rot_angle(a[:3, :3], b[:3, :3]))
    print(f"TCP max error URDF vs MJCF: {max(pos_err) * 1e3:.4f} mm, {max(rot_err):.2e} rad")
    assert max(pos_err) < 1e-3
    assert max(rot_err) < 0.01


def test_mjcf_joint_limits_match_urdf(mjcf_model):
    lims = mjcf_model.jnt_range[_mj_arm_joints(mjcf_model)]  # (7, 2)
    np.testing.assert_allclose(lims[:, 0], LOWER, atol=1e-4)
    np.testing.assert_allclose(lims[:, 1], UPPER, atol=1e-4)


def test_mjcf_home_keyframe_matches_srdf(mjcf_model):
    import mujoco

    kid = mujoco.mj_name2id(mjcf_model, mujoco.mjtObj.mjOBJ_KEY, "home")
    assert kid >= 0, f"{MJCF} has no 'home' keyframe"
    qpos = mjcf_model.key_qpos[kid]
    arm = [mjcf_model.jnt_qposadr[j] for j in _mj_arm_joints(mjcf_model)]
    np.testing.assert_allclose(qpos[arm], srdf_home(), atol=1e-4)
