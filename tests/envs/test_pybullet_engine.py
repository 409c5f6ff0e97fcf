"""The PyBullet engine on its own: timing, state, IK, grasping, rendering, bad input."""

from __future__ import annotations

import math

import numpy as np
import pybullet as p
import pytest

from embodied_mm.envs.assets import AssetError
from embodied_mm.envs.engine import CameraSpec, ObjectSpec, Randomization, SceneSpec
from embodied_mm.envs.engines.pybullet_engine import PyBulletEngine
from embodied_mm.envs.robot import HOME_Q, JOINT_LIMITS, MAX_OPENING, TCP_DOWN_QUAT
from embodied_mm.envs.rotations import quat_error

CUBE = ObjectSpec("cube", "box", (0.02, 0.02, 0.02), (1.0, 0.0, 0.0, 1.0), pos=(0.5, 0.0, 0.02))
SCENE = SceneSpec(
    objects=(
        CUBE,
        ObjectSpec("can", "cylinder", (0.025, 0.04), (0.0, 0.0, 1.0, 1.0), pos=(0.45, 0.2, 0.04)),
        ObjectSpec("ball", "sphere", (0.02,), (0.0, 0.8, 0.0, 1.0), pos=(0.6, -0.2, 0.02)),
        ObjectSpec(
            "zone",
            "box",
            (0.05, 0.05, 0.001),
            (1, 1, 0, 0.5),
            mass=0.0,
            pos=(0.35, -0.25, 0.001),
            collide=False,
        ),
    ),
    image_size=(48, 64),
)
IDENTITY = np.array([1.0, 0.0, 0.0, 0.0])


def cube_at(x: float, y: float) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    return {"cube": (np.array([x, y, 0.02]), IDENTITY)}


@pytest.fixture(scope="module")
def engine():
    eng = PyBulletEngine(SCENE)
    yield eng
    eng.close()


@pytest.fixture
def home(engine):
    engine.reset(HOME_Q, MAX_OPENING, cube_at(0.5, 0.0), {}, Randomization())
    return engine


def test_timing_is_explicit():
    eng = PyBulletEngine(SCENE)
    assert eng.substeps == 12 and math.isclose(eng.substeps * eng.physics_dt, 1 / 20)
    assert PyBulletEngine(SCENE, control_hz=10.0).substeps == 24
    with pytest.raises(ValueError, match="does not divide"):
        PyBulletEngine(SCENE, control_hz=7.0)


def test_reset_puts_robot_and_objects_in_place(home):
    np.testing.assert_allclose(home.arm_joint_positions(), HOME_Q, atol=1e-9)
    assert home.gripper_opening() == pytest.approx(MAX_OPENING)
    pos, quat = home.ee_pose()
    np.testing.assert_allclose(pos, [0.307, 0.0, 0.487], atol=1e-3)
    assert np.linalg.norm(quat_error(TCP_DOWN_QUAT, quat)) < 1e-3
    np.testing.assert_allclose(home.object_pose("cube")[0], [0.5, 0.0, 0.02], atol=1e-9)


def test_holding_still_keeps_pose_and_objects_rest(home):
    for _ in range(10):
        home.step(HOME_Q, 0.0)
    np.testing.assert_allclose(home.arm_joint_positions(), HOME_Q, atol=1e-3)
    np.testing.assert_allclose(home.object_pose("cube")[0], [0.5, 0.0, 0.02], atol=1e-3)
    # an object left mid-air falls onto the table
    z0 = home.object_pose("ball")[0][2]
    home.reset(
        HOME_Q, MAX_OPENING, {"ball": (np.array([0.6, -0.2, 0.2]), IDENTITY)}, {}, Randomization()
    )
    for _ in range(10):
        home.step(HOME_Q, 0.0)
    assert home.object_pose("ball")[0][2] == pytest.approx(z0, abs=2e-3)


def test_joint_targets_are_tracked_within_a_few_steps(home):
    target = HOME_Q + np.array([0.1, -0.1, 0.1, 0.1, -0.1, 0.1, -0.1])
    for _ in range(4):
        home.step(target, 0.0)
    assert np.abs(home.arm_joint_positions() - target).max() < 5e-3


def test_gripper_follows_the_closure_command(home):
    for close, opening in ((0.5, MAX_OPENING / 2), (1.0, 0.0), (0.0, MAX_OPENING)):
        for _ in range(8):
            home.step(HOME_Q, close)
        assert home.gripper_opening() == pytest.approx(opening, abs=1e-3), close


def test_ik_reaches_targets_within_limits(home):
    rng = np.random.default_rng(0)
    for _ in range(20):
        target = np.array([rng.uniform(0.3, 0.7), rng.uniform(-0.3, 0.3), rng.uniform(0.03, 0.4)])
        yaw = rng.uniform(-1.0, 1.0)
        quat = np.array([0.0, math.cos(yaw / 2), math.sin(yaw / 2), 0.0])  # down, yawed
        q = home.solve_ik(target, quat, HOME_Q)
        assert np.all(q >= JOINT_LIMITS[:, 0]) and np.all(q <= JOINT_LIMITS[:, 1])
        home.reset(q, MAX_OPENING, {}, {}, Randomization())
        pos, got = home.ee_pose()
        assert np.linalg.norm(pos - target) < 2e-3, (target, pos)
        assert np.linalg.norm(quat_error(quat, got)) < 0.01


def test_ik_does_not_move_the_simulated_robot(home):
    home.solve_ik(np.array([0.5, 0.2, 0.1]), TCP_DOWN_QUAT, HOME_Q)
    np.testing.assert_allclose(home.arm_joint_positions(), HOME_Q, atol=1e-12)


# Joint configurations that put the TCP (pointing down) over the cube at (0.5, 0, 0.02) at
# z = 0.15, at the cube's centre, and lifted to z = 0.2: a fixed script, independent of IK.
ABOVE = np.array([0.0, 0.151, 0.0, -2.398, 0.0, 2.549, 0.785])
AT_CUBE = np.array([0.0, 0.487, 0.0, -2.358, 0.0, 2.845, 0.785])
LIFTED = np.array([0.0, 0.046, 0.0, -2.376, 0.0, 2.422, 0.785])


def move(engine: PyBulletEngine, q_to: np.ndarray, close: float, steps: int) -> None:
    q_from = engine.arm_joint_positions()
    for k in range(1, steps + 1):
        engine.step(q_from + (q_to - q_from) * k / steps, close)


def test_cube_is_grasped_and_lifted_by_a_joint_space_script(home):
    move(home, ABOVE, 0.0, 15)
    move(home, AT_CUBE, 0.0, 15)
    assert not home.is_grasped("cube")
    move(home, AT_CUBE, 1.0, 10)
    assert home.is_grasped("cube")
    assert home.gripper_opening() == pytest.approx(0.04, abs=2e-3)  # the cube's width
    move(home, LIFTED, 1.0, 20)
    move(home, LIFTED, 1.0, 20)  # hold: the cube must not slip
    cube, _ = home.object_pose("cube")
    tcp, _ = home.ee_pose()
    assert cube[2] > 0.17
    assert np.linalg.norm(cube - tcp) < 0.01  # still centred between the pads
    assert home.is_grasped("cube")
    move(home, LIFTED, 0.0, 20)  # open: it drops back to the table
    assert home.object_pose("cube")[0][2] < 0.03
    assert not home.is_grasped("cube")


def test_reset_is_repeatable_whatever_came_before(engine):
    """Contacts from an earlier episode must not leak into the next (Bullet caches them)."""

    def episode(x: float) -> np.ndarray:
        engine.reset(HOME_Q, MAX_OPENING, cube_at(x, 0.0), {}, Randomization())
        move(engine, ABOVE, 0.0, 5)
        return np.concatenate([*engine.object_pose("cube"), engine.arm_joint_positions()])

    first = episode(0.5)
    episode(0.48)  # a different episode in between: the cube touched the table elsewhere
    np.testing.assert_array_equal(episode(0.5), first)


def test_render_shapes_and_dtype(home):
    for cam in ("front", "wrist"):
        img = home.render(cam)
        assert img.shape == (48, 64, 3) and img.dtype == np.uint8
        assert img.std() > 5  # a scene, not a blank frame


def test_render_is_deterministic_and_follows_appearance_settings(engine):
    def shot(rgba=None, **rnd):
        engine.reset(HOME_Q, MAX_OPENING, cube_at(0.5, 0.0), rgba or {}, Randomization(**rnd))
        return engine.render("front").astype(int)

    base = shot()
    np.testing.assert_array_equal(base, shot())
    for changed in (
        shot(table_rgba=(0.2, 0.6, 0.3, 1.0)),
        shot(table_texture="checker"),
        shot(table_texture="noise"),
        shot(light_dir_jitter=(0.5, 0.0, 0.0)),
        shot(light_intensity=0.5),
        shot(camera_pos_jitter={"front": (0.0, 0.05, 0.0)}),
        shot({"cube": (0.0, 0.0, 1.0, 1.0)}),
    ):
        assert (changed != base).any(axis=-1).sum() > 3  # pixels that differ
    # the recoloured cube shows as blue where it was red
    img = shot({"cube": (0.0, 0.0, 1.0, 1.0)})
    assert (img[..., 2] - img[..., 0] > 100).sum() > 3


def test_wrist_camera_follows_the_hand(home):
    before = home.render("wrist").astype(int)
    move(home, ABOVE, 0.0, 15)
    assert np.abs(home.render("wrist").astype(int) - before).mean() > 5


def test_engines_in_one_process_are_independent():
    a, b = PyBulletEngine(SCENE), PyBulletEngine(SCENE)
    a.reset(HOME_Q, MAX_OPENING, cube_at(0.5, 0.0), {}, Randomization())
    b.reset(HOME_Q, MAX_OPENING, cube_at(0.4, 0.1), {}, Randomization())
    target = HOME_Q + 0.2
    for _ in range(5):
        a.step(target, 1.0)
    np.testing.assert_allclose(b.arm_joint_positions(), HOME_Q, atol=1e-12)
    assert b.gripper_opening() == pytest.approx(MAX_OPENING)
    np.testing.assert_allclose(b.object_pose("cube")[0], [0.4, 0.1, 0.02])
    a.close()
    b.step(HOME_Q, 0.0)  # closing one leaves the other running
    b.close()


def test_fixture_without_mass_can_be_moved_at_reset(engine):
    poses = {"zone": (np.array([0.3, 0.3, 0.001]), IDENTITY)}
    engine.reset(HOME_Q, MAX_OPENING, poses, {}, Randomization())
    engine.step(HOME_Q, 0.0)
    np.testing.assert_allclose(engine.object_pose("zone")[0], [0.3, 0.3, 0.001])


def test_bad_names_and_inputs_fail_clearly(engine):
    with pytest.raises(KeyError, match=r"unknown object 'nope'.*cube"):
        engine.object_pose("nope")
    with pytest.raises(KeyError, match="unknown camera 'top'"):
        engine.render("top")
    with pytest.raises(ValueError, match="table_texture"):
        engine.reset(HOME_Q, MAX_OPENING, {}, {}, Randomization(table_texture="marble"))
    with pytest.raises(ValueError, match="q_arm_target"):
        engine.step(np.full(7, np.nan), 0.0)
    with pytest.raises(ValueError, match="needs 3 size values"):
        PyBulletEngine(SceneSpec(objects=(ObjectSpec("b", "box", (0.1,), (1, 1, 1, 1)),)))
    two = SceneSpec(objects=(CUBE, CUBE))
    with pytest.raises(ValueError, match="repeated"):
        PyBulletEngine(two)


def test_client_is_created_on_first_use():
    # A vector env's worker must build its own simulator rather than inherit one via fork.
    eng = PyBulletEngine(SceneSpec(objects=(CUBE,), cameras=(CameraSpec("front"),)))
    assert eng._client is None
    eng.arm_joint_positions()
    cid = eng._client
    assert cid is not None and p.isConnected(cid)
    eng.close()
    assert not p.isConnected(cid)


@pytest.mark.parametrize(
    "text",
    [
        "<robot name='x'><link name='a'>",  # truncated XML
        "<mujoco model='x'/>",  # a different format
        "<robot name='x'><joint name='j' type='revolute'><parent link='nope'/></joint></robot>",
    ],
)
def test_malformed_urdf_names_the_file(tmp_path, text):
    bad = tmp_path / "broken_arm.urdf"
    bad.write_text(text)
    with pytest.raises(AssetError, match=r"broken_arm\.urdf"):
        # XML errors fail at construction, ones only PyBullet's loader sees on first use
        PyBulletEngine(SCENE, robot_urdf=bad).arm_joint_positions()


def test_missing_urdf_names_the_file(tmp_path):
    with pytest.raises(AssetError, match=r"nowhere\.urdf"):
        PyBulletEngine(SCENE, robot_urdf=tmp_path / "nowhere.urdf")
