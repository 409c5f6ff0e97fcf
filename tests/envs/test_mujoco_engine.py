"""The MuJoCo engine against the Engine contract: timing, reset, IK, grasping, rendering."""

from __future__ import annotations

import numpy as np
import pytest

from embodied_mm.envs.assets import AssetError
from embodied_mm.envs.engine import ObjectSpec, Randomization, SceneSpec
from embodied_mm.envs.engines.mujoco_engine import MujocoEngine
from embodied_mm.envs.robot import HOME_Q, JOINT_LIMITS, MAX_OPENING, TCP_DOWN_QUAT
from embodied_mm.envs.rotations import quat_error

CUBE = ObjectSpec("cube", "box", (0.02, 0.02, 0.02), (1.0, 0.0, 0.0, 1.0), pos=(0.5, 0.0, 0.02))
PLATE = ObjectSpec(
    "plate", "cylinder", (0.06, 0.005), (1, 1, 1, 1), mass=0.0, pos=(0.5, 0.2, 0.005)
)
ZONE = ObjectSpec("zone", "box", (0.05, 0.05, 0.0005), (0, 1, 0, 1), mass=0.0, collide=False)


@pytest.fixture(scope="module")
def engine():
    eng = MujocoEngine(SceneSpec(objects=(CUBE, PLATE, ZONE), image_size=(48, 64)))
    yield eng
    eng.close()


def _reset(engine, cube_xy=(0.5, 0.0), **rnd):
    cube_pose = (np.array([*cube_xy, 0.02]), np.array([1.0, 0, 0, 0]))
    engine.reset(HOME_Q, MAX_OPENING, {"cube": cube_pose}, {}, Randomization(**rnd))


def test_substeps_divide_the_control_period(engine):
    assert engine.substeps * engine.physics_dt == pytest.approx(1 / 20)
    with pytest.raises(ValueError, match="does not divide"):
        MujocoEngine(SceneSpec(objects=()), physics_dt=0.003)


def test_home_pose_puts_the_tcp_at_the_published_point(engine):
    _reset(engine)
    pos, quat = engine.ee_pose()
    np.testing.assert_allclose(pos, [0.307, 0.0, 0.487], atol=1e-3)
    assert np.linalg.norm(quat_error(TCP_DOWN_QUAT, quat)) < 1e-2
    assert engine.gripper_opening() == pytest.approx(MAX_OPENING)
    np.testing.assert_allclose(engine.arm_joint_positions(), HOME_Q)


def test_reset_places_free_bodies_and_fixtures(engine):
    engine.reset(
        HOME_Q,
        0.04,
        {
            "cube": (np.array([0.4, -0.1, 0.02]), np.array([1.0, 0, 0, 0])),
            "plate": (np.array([0.6, 0.15, 0.005]), np.array([1.0, 0, 0, 0])),
        },
        {"cube": (0.0, 0.0, 1.0, 1.0)},
        Randomization(),
    )
    np.testing.assert_allclose(engine.object_pose("cube")[0], [0.4, -0.1, 0.02])
    np.testing.assert_allclose(engine.object_pose("plate")[0], [0.6, 0.15, 0.005])
    assert engine.gripper_opening() == pytest.approx(0.04)
    with pytest.raises(KeyError, match="unknown object 'ghost'"):
        engine.object_pose("ghost")


def test_ik_reaches_a_pose_and_respects_limits(engine):
    _reset(engine)
    target = np.array([0.55, 0.12, 0.1])
    q = engine.solve_ik(target, TCP_DOWN_QUAT, engine.arm_joint_positions())
    assert np.all(q >= JOINT_LIMITS[:, 0]) and np.all(q <= JOINT_LIMITS[:, 1])
    for _ in range(30):
        engine.step(q, 0.0)
    pos, quat = engine.ee_pose()
    np.testing.assert_allclose(pos, target, atol=3e-3)  # servo tracking, not just the solver
    assert np.linalg.norm(quat_error(TCP_DOWN_QUAT, quat)) < 0.02


def test_closing_on_a_cube_grasps_and_lifts_it(engine):
    _reset(engine)
    q = engine.solve_ik(np.array([0.5, 0.0, 0.02]), TCP_DOWN_QUAT, engine.arm_joint_positions())
    for _ in range(30):
        engine.step(q, 0.0)
    assert not engine.is_grasped("cube")
    for _ in range(10):
        engine.step(q, 1.0)
    assert engine.is_grasped("cube")
    assert engine.gripper_opening() == pytest.approx(0.04, abs=2e-3)  # stalls on the 4 cm cube
    q_up = engine.solve_ik(np.array([0.5, 0.0, 0.2]), TCP_DOWN_QUAT, q)
    for _ in range(30):
        engine.step(q_up, 1.0)
    assert engine.object_pose("cube")[0][2] > 0.15
    assert engine.is_grasped("cube")


def test_render_gives_images_that_follow_appearance_settings(engine):
    _reset(engine)
    front = engine.render("front")
    wrist = engine.render("wrist")
    assert front.shape == (48, 64, 3) and front.dtype == np.uint8
    assert wrist.shape == (48, 64, 3)
    assert front.std() > 5  # a scene, not a blank frame
    _reset(engine, table_texture="checker", table_rgba=(0.2, 0.5, 0.2, 1.0), light_intensity=1.2)
    assert not np.array_equal(front, engine.render("front"))
    with pytest.raises(KeyError, match="unknown camera"):
        engine.render("top")


def test_malformed_robot_asset_names_the_file(tmp_path):
    bad = tmp_path / "broken_panda.xml"
    bad.write_text("<mujoco><worldbody><body></worldbody></mujoco>")
    with pytest.raises(AssetError, match=r"broken_panda\.xml"):
        MujocoEngine(SceneSpec(objects=()), robot_xml=bad)
    wrong = tmp_path / "not_a_panda.xml"
    wrong.write_text(
        '<mujoco><worldbody><body name="b"><geom size="0.1"/></body></worldbody></mujoco>'
    )
    with pytest.raises(AssetError, match=r"not_a_panda\.xml.*joint1"):
        MujocoEngine(SceneSpec(objects=()), robot_xml=wrong)
    with pytest.raises(AssetError, match=r"missing\.xml"):
        MujocoEngine(SceneSpec(objects=()), robot_xml=tmp_path / "missing.xml")
