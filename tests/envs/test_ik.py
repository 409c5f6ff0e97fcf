"""The shared IK (envs/ik.py): its contract on an engine-free kinematics, and the same answers
on MuJoCo and PyBullet for reachable and unreachable targets.

Joint-space tolerance of "the same answer", ``SAME_Q`` = 1 mrad per joint: the engines' FK
differ by ~0.005 mm (Bullet computes in single precision), and 1 mrad at a joint moves the TCP
by at most its distance from that joint's axis (< 1.2 m, ``MAX_REACH``), so answers that agree
to 1 mrad put the TCP within about 1 mm of each other: the accuracy the reachable targets are
held to.
"""

from __future__ import annotations

import numpy as np
import pytest

from embodied_mm.envs import ik
from embodied_mm.envs.engine import Randomization, SceneSpec
from embodied_mm.envs.engines.mujoco_engine import MujocoEngine
from embodied_mm.envs.robot import HOME_Q, JOINT_LIMITS, MAX_OPENING, TCP_DOWN_QUAT
from embodied_mm.envs.rotations import quat_error, quat_mul, rotvec_quat, yaw_quat
from embodied_mm.envs.tabletop_env import TCP_HIGH, TCP_LOW
from tests.envs.panda_dh import MAX_REACH, SHOULDER, PandaDH

SAME_Q = 1e-3  # rad, see the module docstring
REACH_TOL = 1e-3  # m
LOWER, UPPER = JOINT_LIMITS[:, 0], JOINT_LIMITS[:, 1]
DH = PandaDH()


def reachable_targets(n: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(q, pos, quat): FK of random in-limit configs within 0.6 rad of home whose TCP is in the
    envs' TCP box. A local solver started at home is only promised the targets of its own
    basin; the tasks live there (from farther configs, e.g. a wrist turned 2 rad, damped least
    squares from home may stop at a joint limit)."""
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < n:
        q = np.clip(HOME_Q + rng.uniform(-0.6, 0.6, 7), LOWER, UPPER)
        pos, quat, _ = DH.tcp_pose_and_jacobian(q)
        if np.all(pos >= TCP_LOW) and np.all(pos <= TCP_HIGH):
            out.append((q, pos, quat))
    return out


def unreachable_targets(n: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """(pos, quat) 1.3-3 m from the shoulder in random directions (the arm reaches at most
    MAX_REACH = 1.16 m), half pointing about down, half in any orientation."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        direction = rng.normal(size=3)
        pos = SHOULDER + rng.uniform(1.3, 3.0) * direction / np.linalg.norm(direction)
        turn = rng.normal(size=3) * (3.0 if i % 2 else 0.3)
        out.append((pos, quat_mul(rotvec_quat(turn), TCP_DOWN_QUAT)))
    return out


class Recording:
    """Wraps a Kinematics and keeps every joint vector the solver evaluated."""

    def __init__(self, kin: ik.Kinematics) -> None:
        self.kin = kin
        self.joint_limits = kin.joint_limits
        self.calls: list[np.ndarray] = []

    def tcp_pose_and_jacobian(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        self.calls.append(np.array(q, dtype=np.float64))
        return self.kin.tcp_pose_and_jacobian(q)


def pose_error(kin: ik.Kinematics, q: np.ndarray, pos: np.ndarray, quat: np.ndarray):
    got_pos, got_quat, _ = kin.tcp_pose_and_jacobian(q)
    return float(np.linalg.norm(pos - got_pos)), float(np.linalg.norm(quat_error(quat, got_quat)))


@pytest.fixture(scope="module")
def mujoco_engine():
    eng = MujocoEngine(SceneSpec(objects=(), image_size=(16, 16)))
    yield eng
    eng.close()


@pytest.fixture(scope="module")
def pybullet_engine():
    pytest.importorskip("pybullet")
    from embodied_mm.envs.engines.pybullet_engine import PyBulletEngine

    eng = PyBulletEngine(SceneSpec(objects=(), image_size=(16, 16)))
    yield eng
    eng.close()


@pytest.fixture(scope="module", params=["mujoco", "pybullet"])
def engine(request):
    return request.getfixturevalue(f"{request.param}_engine")


# --- the contract, on the engine-free kinematics ---------------------------------------------


def test_reference_jacobian_is_the_derivative_of_its_fk():
    """The test's own reference must be right before engines are held to it."""
    rng = np.random.default_rng(3)
    h = 1e-6
    for _ in range(5):
        q = rng.uniform(LOWER, UPPER)
        pos, quat, jac = DH.tcp_pose_and_jacobian(q)
        for i in range(7):
            dq = np.zeros(7)
            dq[i] = h
            pos1, quat1, _ = DH.tcp_pose_and_jacobian(q + dq)
            np.testing.assert_allclose((pos1 - pos) / h, jac[:3, i], atol=1e-5)
            np.testing.assert_allclose(quat_error(quat1, quat) / h, jac[3:, i], atol=1e-5)


def test_solver_reaches_targets_and_reports_its_errors():
    for _, pos, quat in reachable_targets(20, seed=1):
        res = ik.solve_ik(DH, pos, quat, HOME_Q)
        assert res.converged, (pos, res)
        assert 1 <= res.iterations <= ik.IKParams().max_iters
        assert res.pos_err < ik.IKParams().tol_pos and res.rot_err < ik.IKParams().tol_rot
        assert pose_error(DH, res.q, pos, quat) == pytest.approx((res.pos_err, res.rot_err))


def turned_beyond_limits(n: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """(pos, quat) over the table, pointing down but turned 2.6-3.1 rad about z the way that
    joint 7 (at 0.785 rad at home, limit 2.897) cannot follow: in the workspace, and mostly
    out of reach (now and then the other joints make up for joint 7)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        pos = np.array([rng.uniform(0.3, 0.7), rng.uniform(-0.3, 0.3), rng.uniform(0.05, 0.4)])
        out.append((pos, quat_mul(yaw_quat(-rng.uniform(2.6, 3.1)), TCP_DOWN_QUAT)))
    return out


def test_every_iterate_is_within_limits_and_steps_are_bounded():
    params = ik.IKParams()
    for pos, quat in unreachable_targets(6, seed=2) + turned_beyond_limits(3):
        rec = Recording(DH)
        q_init = HOME_Q + np.array([4.0, 0.0, 0.0, 3.0, 0.0, 0.0, 0.0])  # j1, j4 out of limits
        res = ik.solve_ik(rec, pos, quat, q_init)
        calls = np.array(rec.calls)
        assert len(calls) == res.iterations
        assert np.all(calls >= LOWER) and np.all(calls <= UPPER)
        np.testing.assert_allclose(calls[0], np.clip(q_init, LOWER, UPPER))
        assert np.abs(np.diff(calls, axis=0)).max() <= params.max_step + 1e-12


def test_returns_the_best_iterate_not_the_last():
    for pos, quat in unreachable_targets(10, seed=4):
        rec = Recording(DH)
        res = ik.solve_ik(rec, pos, quat, HOME_Q)
        errors = [np.hypot(*pose_error(DH, q, pos, quat)) for q in rec.calls]
        k = int(np.argmin(errors))
        np.testing.assert_array_equal(res.q, rec.calls[k])
        assert np.hypot(res.pos_err, res.rot_err) == pytest.approx(errors[k])
        assert not res.converged
        # the closest pose found is far closer than where it started, and as close as the
        # arm's reach allows (within the reach's slack, as rotation errors also count)
        assert errors[k] < errors[0]
        assert res.pos_err >= np.linalg.norm(pos - SHOULDER) - MAX_REACH


def test_deterministic_and_leaves_its_inputs_alone():
    pos, quat = unreachable_targets(1, seed=5)[0]
    q_init, home = HOME_Q + 0.1, HOME_Q.copy()
    args = (pos.copy(), quat.copy(), q_init.copy())
    first = ik.solve_ik(DH, *args, home=home)
    second = ik.solve_ik(DH, *args, home=home)
    np.testing.assert_array_equal(first.q, second.q)
    np.testing.assert_array_equal(args[0], pos)
    np.testing.assert_array_equal(args[2], q_init)
    np.testing.assert_array_equal(home, HOME_Q)
    # an unnormalised target quaternion means the same orientation
    _, pos, quat = reachable_targets(1, seed=6)[0]
    np.testing.assert_allclose(
        ik.solve_ik(DH, pos, 3.0 * quat, HOME_Q).q, ik.solve_ik(DH, pos, quat, HOME_Q).q
    )


def self_motion(q: np.ndarray, angle: float, step: float = 0.01) -> np.ndarray:
    """Joints reached from ``q`` by turning ``angle`` rad along the arm's self-motion (the
    Jacobian's null space), which leaves the TCP pose (nearly) where it was."""
    prev = None
    for _ in range(round(angle / step)):
        v = np.linalg.svd(DH.tcp_pose_and_jacobian(q)[2])[2][-1]  # (7,) null direction
        if (prev is not None and v @ prev < 0) or (prev is None and v[0] < 0):
            v = -v
        q, prev = q + step * v, v
    return q


def test_null_space_pull_brings_the_redundant_joints_back_home():
    """Start with the elbow swung 0.5 rad along the self-motion, track a TCP around the home
    pose for many calls (as ee_delta does), then go back to the home pose: with the pull the
    arm ends near home, without it the swing stays."""
    pos0, quat0, _ = DH.tcp_pose_and_jacobian(HOME_Q)
    start = self_motion(HOME_Q, 0.5)
    off_home = {}
    for gain in (0.0, ik.IKParams().home_gain):
        params = ik.IKParams(home_gain=gain)
        q = start
        for k in range(40):
            pos = pos0 + np.array([0.03 * np.sin(k / 3), 0.03 * np.cos(k / 4), 0.0])
            res = ik.solve_ik(DH, pos, quat0, q, params=params)
            assert res.converged
            q = res.q
        q = ik.solve_ik(DH, pos0, quat0, q, params=params).q
        off_home[gain] = float(np.linalg.norm(q - HOME_Q))
    assert off_home[0.0] > 0.4 and off_home[ik.IKParams().home_gain] < 0.1, off_home


# --- the engines' kinematics against the reference --------------------------------------------


def test_engine_kinematics_match_the_reference(engine):
    """Same FK and Jacobian conventions (world frame, linear rows first, wxyz): to 1e-5 m,
    1e-4 rad and 1e-4 per Jacobian entry (the engines' float precision, with margin)."""
    rng = np.random.default_rng(7)
    engine.reset(HOME_Q, MAX_OPENING, {}, {}, Randomization())
    for q in [HOME_Q, *rng.uniform(LOWER, UPPER, size=(30, 7))]:
        want_pos, want_quat, want_jac = DH.tcp_pose_and_jacobian(q)
        pos, quat, jac = engine.tcp_pose_and_jacobian(q)
        assert pos.shape == (3,) and quat.shape == (4,) and jac.shape == (6, 7)
        np.testing.assert_allclose(pos, want_pos, atol=1e-5)
        assert np.linalg.norm(quat_error(want_quat, quat)) < 1e-4
        np.testing.assert_allclose(jac, want_jac, atol=1e-4)
    # the kinematic copy is not the simulated robot
    np.testing.assert_allclose(engine.arm_joint_positions(), HOME_Q, atol=1e-12)


def test_engine_ik_is_the_shared_solver(engine):
    """Given the same FK, an engine's solve_ik gives what the solver gives on the engine-free
    kinematics: the answer depends on the kinematics only."""
    targets = [(p, q) for _, p, q in reachable_targets(10, seed=8)] + unreachable_targets(10)
    for pos, quat in targets:
        np.testing.assert_allclose(
            engine.solve_ik(pos, quat, HOME_Q),
            ik.solve_ik(DH, pos, quat, HOME_Q).q,
            atol=SAME_Q,
            err_msg=str(pos),
        )


# --- both engines, the acceptance test -----------------------------------------------


def test_both_engines_reach_the_same_reachable_targets_within_1mm(mujoco_engine, pybullet_engine):
    for _, pos, quat in reachable_targets(30):
        answers = []
        for eng in (mujoco_engine, pybullet_engine):
            q = eng.solve_ik(pos, quat, HOME_Q)
            assert np.all(q >= LOWER) and np.all(q <= UPPER)
            # measured on the simulated robot put at the answer, not on the IK's own copy
            eng.reset(q, MAX_OPENING, {}, {}, Randomization())
            got_pos, got_quat = eng.ee_pose()
            assert np.linalg.norm(got_pos - pos) < REACH_TOL, (eng.name, pos, got_pos)
            assert np.linalg.norm(quat_error(quat, got_quat)) < 0.01, (eng.name, pos)
            answers.append(q)
        np.testing.assert_allclose(answers[0], answers[1], atol=SAME_Q, err_msg=str(pos))


def test_both_engines_give_the_same_clamped_answer_for_unreachable_targets(
    mujoco_engine, pybullet_engine
):
    far = unreachable_targets(30, seed=9)
    assert all(np.linalg.norm(pos - SHOULDER) > MAX_REACH for pos, _ in far)
    turned = [
        t for t in turned_beyond_limits(12, seed=10) if not ik.solve_ik(DH, *t, HOME_Q).converged
    ]
    assert len(turned) >= 8
    for pos, quat in far + turned:
        a = mujoco_engine.solve_ik(pos, quat, HOME_Q)
        b = pybullet_engine.solve_ik(pos, quat, HOME_Q)
        assert np.all(a >= LOWER) and np.all(a <= UPPER)
        np.testing.assert_allclose(a, b, atol=SAME_Q, err_msg=str(pos))
