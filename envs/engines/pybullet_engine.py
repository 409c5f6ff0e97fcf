"""The PyBullet implementation of :class:`embodied_mm.envs.engine.Engine`.

One ``p.DIRECT`` client per engine instance (every call passes ``physicsClientId``), so several
environments can live in one process. The client is created lazily on first use: a vector
env's worker process builds its own simulator instead of inheriting one across a fork.

A second, physics-free client holds a kinematic copy of the robot for the FK and Jacobian that
the shared IK (``envs/ik.py``) asks for, so solving IK never disturbs the simulated state.
"""

from __future__ import annotations

import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

import cv2
import numpy as np
import pybullet as p

from embodied_mm.envs.assets import AssetError, asset_path
from embodied_mm.envs.engine import (
    TABLE_TEXTURES,
    Engine,
    ObjectSpec,
    Randomization,
    SceneSpec,
    TableTexture,
)
from embodied_mm.envs.robot import (
    FINGER_TRAVEL,
    N_ARM_JOINTS,
    WRIST_CAMERA_EYE,
    WRIST_CAMERA_LOOK_AT,
    WRIST_CAMERA_UP,
)

ROBOT_ASSET = "robots/panda.urdf"
ARM_JOINTS = tuple(f"panda_joint{i}" for i in range(1, 8))
FINGER_JOINTS = ("panda_finger_joint1", "panda_finger_joint2")
TCP_LINK = "tcp"
HAND_LINK = "panda_hand"

TABLE_THICKNESS = 0.04
FLOOR_Z = -0.75  # catches objects pushed off the table
# The key light shines along LIGHT_DIR (the MuJoCo engine's value, so both engines light the
# scene alike); TinyRenderer wants the opposite vector, from the scene towards the light.
LIGHT_DIR = np.array([-0.3, 0.2, -1.0])
FLOOR_RGB = np.array([77, 82, 89], dtype=np.uint8)  # the MuJoCo side's floor, (0.3, 0.32, 0.35)

# Arm position servo: the motor is a velocity constraint whose target speed is
# gain * error / dt, capped by the joint's effort. With these gains the TCP covers ~58 % of a
# 3 cm step in one 50 ms control period and 94 % in three, without overshoot: about what the
# MuJoCo side's servos do (~60 %), so ee_delta actions mean the same on both engines.
ARM_POSITION_GAIN = 0.08
ARM_VELOCITY_GAIN = 1.0
GRIPPER_FORCE = 40.0  # N per finger, as the real hand's continuous grasp force (70 N) / 2
GRIPPER_SPEED = 0.2  # m/s per finger


def _xyzw(quat_wxyz) -> tuple[float, float, float, float]:
    w, x, y, z = quat_wxyz
    return (float(x), float(y), float(z), float(w))


def _wxyz(quat_xyzw) -> np.ndarray:
    x, y, z, w = quat_xyzw
    return np.array([w, x, y, z], dtype=np.float64)


def check_urdf(path: Path) -> None:
    """Fail with an :class:`AssetError` naming ``path`` unless it is a readable URDF document.

    PyBullet's own loader only says "Cannot load URDF file.", without the file or the reason.
    """
    if not path.is_file():
        raise AssetError(f"asset file not found: {path}")
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise AssetError(f"malformed URDF {path}: {exc}") from exc
    if root.tag != "robot":
        raise AssetError(f"malformed URDF {path}: root element is <{root.tag}>, not <robot>")


def _table_textures(folder: Path) -> dict[TableTexture, Path]:
    """Write the white (so ``rgbaColor`` tints them) table textures as PNGs into ``folder``.

    The same looks as the MuJoCo side's builtins: flat; a 2-tone checkerboard of 5 cm squares
    over the 0.8 x 1.0 m top (10 px squares on a 160 x 200 px image); 15 % grey speckles.
    """
    rows, cols = np.mgrid[:200, :160]
    checker = np.where((rows // 10 + cols // 10) % 2 == 0, 255, 178).astype(np.uint8)
    # A fixed seed: the texture is an asset, not part of an episode's randomness.
    speckle = np.random.default_rng(0).random((128, 128)) < 0.15
    noise = np.where(speckle, 153, 255).astype(np.uint8)
    images = {"plain": np.full((4, 4), 255, np.uint8), "checker": checker, "noise": noise}
    paths = {}
    for name in TABLE_TEXTURES:
        paths[name] = folder / f"table_{name}.png"
        cv2.imwrite(str(paths[name]), np.repeat(images[name][..., None], 3, axis=2))
    return paths


SIZE_VALUES = {"box": 3, "cylinder": 2, "sphere": 1}


def check_object(spec: ObjectSpec) -> None:
    """Fail with a message naming the object unless its shape and size make sense."""
    if spec.shape not in SIZE_VALUES:
        raise ValueError(
            f"object {spec.name!r}: unknown shape {spec.shape!r}; known: {sorted(SIZE_VALUES)}"
        )
    n = SIZE_VALUES[spec.shape]
    if len(spec.size) != n or min(spec.size) <= 0:
        raise ValueError(
            f"object {spec.name!r}: a {spec.shape} needs {n} size values > 0, got {spec.size}"
        )


def _table_mesh(hx: float, hy: float, hz: float) -> dict[str, list]:
    """A box without its bottom face, as a mesh whose top carries the whole texture.

    PyBullet's built-in box maps only a patch of a texture onto each face, hence explicit
    texture coordinates (u along x, v along y). TinyRenderer's cost grows with the screen area
    of each triangle, hidden or not, so the never-seen bottom face is left out.
    """
    verts, normals, uvs, idx = [], [], [], []
    for axis in range(3):
        for sign in (1.0, -1.0):
            if axis == 2 and sign < 0:
                continue
            n = np.zeros(3)
            n[axis] = sign
            u_ax, v_ax = [a for a in range(3) if a != axis]
            half = np.array([hx, hy, hz])
            base = len(verts)
            for du, dv in ((-1, -1), (1, -1), (1, 1), (-1, 1)):
                v = n * half
                v[u_ax] = du * half[u_ax]
                v[v_ax] = dv * half[v_ax]
                verts.append(v.tolist())
                normals.append(n.tolist())
                # only the top face shows the texture; the sides take one texel
                uvs.append([(du + 1) / 2, (dv + 1) / 2] if axis == 2 and sign > 0 else [0, 0])
            # wind the triangles counter-clockwise seen from outside
            v0, v1, v2 = (np.array(verts[base + k]) for k in range(3))
            ccw = np.dot(np.cross(v1 - v0, v2 - v0), n) > 0
            quad = (0, 1, 2, 0, 2, 3) if ccw else (0, 2, 1, 0, 3, 2)
            idx += [base + k for k in quad]
    return {"vertices": verts, "indices": idx, "normals": normals, "uvs": uvs}


class PyBulletEngine(Engine):
    """A Panda-kinematics arm on a table, simulated by PyBullet at 240 Hz (12 substeps at 20 Hz)."""

    name = "pybullet"

    def __init__(
        self,
        scene: SceneSpec,
        control_hz: float = 20.0,
        physics_dt: float = 1.0 / 240.0,
        robot_urdf: str | Path | None = None,
    ) -> None:
        self.physics_dt = physics_dt
        super().__init__(scene, control_hz)
        self.robot_urdf = Path(robot_urdf) if robot_urdf is not None else asset_path(ROBOT_ASSET)
        check_urdf(self.robot_urdf)  # fail at construction, not in a worker's first reset
        names = [o.name for o in scene.objects]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"scene objects must have unique names; repeated: {dupes}")
        for spec in scene.objects:
            check_object(spec)
        self._cam_names = [c.name for c in scene.cameras]
        self._client: int | None = None
        self._ik_client: int | None = None
        self._texture_dir: tempfile.TemporaryDirectory | None = None
        self._randomization = Randomization()

    # --- construction ----------------------------------------------------------------------
    def _sim(self) -> int:
        if self._client is None:
            self._build()
        assert self._client is not None
        return self._client

    def _load_robot(self, cid: int) -> int:
        try:
            return p.loadURDF(
                str(self.robot_urdf),
                basePosition=(0, 0, 0),
                useFixedBase=True,
                flags=p.URDF_USE_INERTIA_FROM_FILE,
                physicsClientId=cid,
            )
        except p.error as exc:
            raise AssetError(f"PyBullet cannot load URDF {self.robot_urdf}: {exc}") from exc

    def _build(self) -> None:
        cid = p.connect(p.DIRECT)
        ik = p.connect(p.DIRECT)
        try:
            self._build_world(cid)
            self._ik_robot = self._load_robot(ik)
        except BaseException:
            p.disconnect(cid)
            p.disconnect(ik)
            raise
        self._client, self._ik_client = cid, ik

    def _build_world(self, cid: int) -> None:
        p.setPhysicsEngineParameter(
            fixedTimeStep=self.physics_dt,
            numSubSteps=0,
            numSolverIterations=50,
            deterministicOverlappingPairs=1,  # contact order independent of history
            physicsClientId=cid,
        )
        p.setGravity(0, 0, -9.81, physicsClientId=cid)
        self.robot = self._load_robot(cid)
        joints = {}
        links = {}
        for j in range(p.getNumJoints(self.robot, physicsClientId=cid)):
            info = p.getJointInfo(self.robot, j, physicsClientId=cid)
            joints[info[1].decode()] = j
            links[info[12].decode()] = j
        missing = [n for n in (*ARM_JOINTS, *FINGER_JOINTS) if n not in joints]
        missing += [n for n in (TCP_LINK, HAND_LINK) if n not in links]
        if missing:
            raise AssetError(f"URDF {self.robot_urdf} lacks joints/links {missing}")
        self._arm = [joints[n] for n in ARM_JOINTS]
        self._fingers = [joints[n] for n in FINGER_JOINTS]
        self._tcp = links[TCP_LINK]
        self._hand = links[HAND_LINK]
        infos = [p.getJointInfo(self.robot, j, physicsClientId=cid) for j in self._arm]
        self._arm_effort = [float(i[10]) for i in infos]
        # All movable joints in index order: calculateJacobian wants every one of them.
        self._movable = [
            j
            for j in range(p.getNumJoints(self.robot, physicsClientId=cid))
            if p.getJointInfo(self.robot, j, physicsClientId=cid)[2] != p.JOINT_FIXED
        ]
        self._arm_cols = [self._movable.index(j) for j in self._arm]
        for f in self._fingers:
            # High pad friction and a friction anchor keep a grasped object from creeping out.
            p.changeDynamics(
                self.robot,
                f,
                lateralFriction=1.5,
                spinningFriction=0.02,
                frictionAnchor=True,
                physicsClientId=cid,
            )

        # The real hand couples its fingers mechanically; a gear constraint does the same here,
        # so a grasped object ends up centred between the pads instead of drifting with
        # whichever finger arrived first.
        gear = p.createConstraint(
            self.robot,
            self._fingers[0],
            self.robot,
            self._fingers[1],
            jointType=p.JOINT_GEAR,
            jointAxis=(1, 0, 0),
            parentFramePosition=(0, 0, 0),
            childFramePosition=(0, 0, 0),
            physicsClientId=cid,
        )
        p.changeConstraint(gear, gearRatio=-1, erp=0.1, maxForce=50, physicsClientId=cid)

        sx, sy = self.scene.table_size
        table_half = (sx / 2, sy / 2, TABLE_THICKNESS / 2)
        self._table = p.createMultiBody(
            baseMass=0,
            baseCollisionShapeIndex=p.createCollisionShape(
                p.GEOM_BOX, halfExtents=table_half, physicsClientId=cid
            ),
            baseVisualShapeIndex=p.createVisualShape(
                p.GEOM_MESH,
                **_table_mesh(*table_half),
                rgbaColor=self.scene.table_rgba,
                physicsClientId=cid,
            ),
            basePosition=(0.5, 0.0, -TABLE_THICKNESS / 2),
            physicsClientId=cid,
        )
        p.changeDynamics(self._table, -1, lateralFriction=1.0, physicsClientId=cid)
        self._texture_dir = tempfile.TemporaryDirectory(prefix="embodied_mm_pybullet_")
        self._textures = {
            name: p.loadTexture(str(path), physicsClientId=cid)
            for name, path in _table_textures(Path(self._texture_dir.name)).items()
        }
        # The floor is invisible (a body without a visual would be drawn from its collision
        # shape): a plane that fills the view costs TinyRenderer ~4 ms per 128² frame, so
        # render() paints the empty background in the floor's colour instead.
        p.createMultiBody(
            0,
            p.createCollisionShape(p.GEOM_PLANE, physicsClientId=cid),
            p.createVisualShape(
                p.GEOM_SPHERE, radius=0.001, rgbaColor=(0, 0, 0, 0), physicsClientId=cid
            ),
            basePosition=(0, 0, FLOOR_Z),
            physicsClientId=cid,
        )

        self._bodies: dict[str, int] = {}
        for spec in self.scene.objects:
            self._bodies[spec.name] = self._create_object(cid, spec)

    def _create_object(self, cid: int, spec: ObjectSpec) -> int:
        s = spec.size
        if spec.shape == "box":
            geom = {"shapeType": p.GEOM_BOX, "halfExtents": s}
            vis_geom, col_geom = geom, geom
        elif spec.shape == "cylinder":
            col_geom = {"shapeType": p.GEOM_CYLINDER, "radius": s[0], "height": 2 * s[1]}
            vis_geom = {"shapeType": p.GEOM_CYLINDER, "radius": s[0], "length": 2 * s[1]}
        else:
            vis_geom = col_geom = {"shapeType": p.GEOM_SPHERE, "radius": s[0]}
        col = p.createCollisionShape(**col_geom, physicsClientId=cid) if spec.collide else -1
        vis = p.createVisualShape(**vis_geom, rgbaColor=spec.rgba, physicsClientId=cid)
        body = p.createMultiBody(
            baseMass=spec.mass if spec.collide else 0.0,
            baseCollisionShapeIndex=col,
            baseVisualShapeIndex=vis,
            basePosition=spec.pos,
            baseOrientation=_xyzw(spec.quat),
            physicsClientId=cid,
        )
        if spec.collide:
            p.changeDynamics(
                body,
                -1,
                lateralFriction=spec.friction,
                spinningFriction=0.002,
                rollingFriction=0.0002,
                physicsClientId=cid,
            )
        return body

    # --- episode ---------------------------------------------------------------------------
    def reset(
        self,
        q_arm: np.ndarray,  # (7,)
        gripper_opening: float,
        object_poses: dict[str, tuple[np.ndarray, np.ndarray]],
        object_rgba: dict[str, tuple[float, float, float, float]],
        randomization: Randomization,
    ) -> None:
        cid = self._sim()
        # Check everything before touching the simulator, so bad input leaves it as it was.
        q_arm = np.asarray(q_arm, dtype=np.float64)
        if q_arm.shape != (N_ARM_JOINTS,):
            raise ValueError(f"q_arm must have shape ({N_ARM_JOINTS},), got {q_arm.shape}")
        for name in (*object_poses, *object_rgba):
            self._body(name)
        if randomization.table_texture not in self._textures:
            raise ValueError(
                f"table_texture {randomization.table_texture!r} not in {TABLE_TEXTURES}"
            )
        unknown = set(randomization.camera_pos_jitter) - set(self._cam_names)
        if unknown:
            raise ValueError(f"camera_pos_jitter names unknown cameras {sorted(unknown)}")

        # Bullet keeps contact manifolds (with their friction anchors and warm-start impulses)
        # across resetBasePositionAndOrientation, so an episode would depend on the ones
        # before it. Parking every object apart and running collision detection drops them,
        # which makes reset(seed) repeatable.
        for k, body in enumerate(self._bodies.values()):
            p.resetBasePositionAndOrientation(
                body, (100.0 + 2.0 * k, 100.0, 10.0), (0, 0, 0, 1), physicsClientId=cid
            )
        p.performCollisionDetection(physicsClientId=cid)
        for j, q in zip(self._arm, q_arm, strict=True):
            p.resetJointState(self.robot, j, float(q), 0.0, physicsClientId=cid)
        finger = float(np.clip(gripper_opening / 2, 0.0, FINGER_TRAVEL))
        for f in self._fingers:
            p.resetJointState(self.robot, f, finger, 0.0, physicsClientId=cid)
        self._drive(cid, q_arm, finger)  # hold the reset pose until the first step
        for spec in self.scene.objects:  # objects not placed go back to their spec pose
            pos, quat = object_poses.get(spec.name, (spec.pos, spec.quat))
            body = self._bodies[spec.name]
            p.resetBasePositionAndOrientation(
                body, tuple(map(float, pos)), _xyzw(quat), physicsClientId=cid
            )
            p.resetBaseVelocity(body, (0, 0, 0), (0, 0, 0), physicsClientId=cid)
        for name, rgba in object_rgba.items():
            p.changeVisualShape(self._bodies[name], -1, rgbaColor=rgba, physicsClientId=cid)
        table_rgba = randomization.table_rgba or self.scene.table_rgba
        p.changeVisualShape(
            self._table,
            -1,
            rgbaColor=table_rgba,
            textureUniqueId=self._textures[randomization.table_texture],
            physicsClientId=cid,
        )
        self._randomization = randomization

    def _drive(self, cid: int, q_arm: np.ndarray, finger_target: float) -> None:
        p.setJointMotorControlArray(
            self.robot,
            self._arm,
            p.POSITION_CONTROL,
            targetPositions=[float(q) for q in q_arm],
            targetVelocities=[0.0] * 7,
            forces=self._arm_effort,
            positionGains=[ARM_POSITION_GAIN] * 7,
            velocityGains=[ARM_VELOCITY_GAIN] * 7,
            physicsClientId=cid,
        )
        for f in self._fingers:
            p.setJointMotorControl2(
                self.robot,
                f,
                p.POSITION_CONTROL,
                targetPosition=finger_target,
                force=GRIPPER_FORCE,
                maxVelocity=GRIPPER_SPEED,
                physicsClientId=cid,
            )

    def step(self, q_arm_target: np.ndarray, gripper_close: float) -> None:
        cid = self._sim()
        q = np.asarray(q_arm_target, dtype=np.float64)
        if q.shape != (N_ARM_JOINTS,) or not np.all(np.isfinite(q)):
            raise ValueError(f"q_arm_target must be 7 finite values, got {q_arm_target!r}")
        close = float(np.clip(gripper_close, 0.0, 1.0))
        self._drive(cid, q, FINGER_TRAVEL * (1.0 - close))
        for _ in range(self.substeps):
            p.stepSimulation(physicsClientId=cid)

    # --- state -----------------------------------------------------------------------------
    def arm_joint_positions(self) -> np.ndarray:
        cid = self._sim()
        states = p.getJointStates(self.robot, self._arm, physicsClientId=cid)
        return np.array([s[0] for s in states], dtype=np.float64)

    def gripper_opening(self) -> float:
        cid = self._sim()
        states = p.getJointStates(self.robot, self._fingers, physicsClientId=cid)
        return float(sum(s[0] for s in states))

    def ee_pose(self) -> tuple[np.ndarray, np.ndarray]:
        cid = self._sim()
        s = p.getLinkState(
            self.robot, self._tcp, computeForwardKinematics=True, physicsClientId=cid
        )
        return np.array(s[4], dtype=np.float64), _wxyz(s[5])

    def _body(self, name: str) -> int:
        if name not in self._bodies:
            raise KeyError(f"unknown object {name!r}; scene objects: {sorted(self._bodies)}")
        return self._bodies[name]

    def object_pose(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        cid = self._sim()
        pos, orn = p.getBasePositionAndOrientation(self._body(name), physicsClientId=cid)
        return np.array(pos, dtype=np.float64), _wxyz(orn)

    def is_grasped(self, name: str) -> bool:
        cid = self._sim()
        body = self._body(name)
        return all(
            len(p.getContactPoints(self.robot, body, f, -1, physicsClientId=cid)) > 0
            for f in self._fingers
        )

    # --- kinematics ------------------------------------------------------------------------
    def tcp_pose_and_jacobian(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        self._sim()
        ik = self._ik_client
        for j, v in zip(self._arm, q, strict=True):
            p.resetJointState(self._ik_robot, j, float(v), physicsClientId=ik)
        s = p.getLinkState(
            self._ik_robot, self._tcp, computeForwardKinematics=True, physicsClientId=ik
        )
        # calculateJacobian wants a value for every movable joint; the fingers stay at 0,
        # which does not move the TCP (it is on the hand).
        full = [0.0] * len(self._movable)
        for c, v in zip(self._arm_cols, q, strict=True):
            full[c] = float(v)
        zeros = [0.0] * len(self._movable)
        lin, ang = p.calculateJacobian(
            self._ik_robot, self._tcp, (0, 0, 0), full, zeros, zeros, physicsClientId=ik
        )
        jac = np.vstack([np.asarray(lin), np.asarray(ang)])[:, self._arm_cols]  # (6, 7)
        return np.array(s[4], dtype=np.float64), _wxyz(s[5]), jac

    # --- rendering -------------------------------------------------------------------------
    def render(self, camera: str) -> np.ndarray:
        cid = self._sim()
        spec, (h, w) = self.scene.camera_and_size(camera)  # KeyError for an unknown name
        if spec.mount == "wrist":
            s = p.getLinkState(
                self.robot, self._hand, computeForwardKinematics=True, physicsClientId=cid
            )
            rot = np.asarray(p.getMatrixFromQuaternion(s[5])).reshape(3, 3)
            eye = np.asarray(s[4]) + rot @ WRIST_CAMERA_EYE
            look = np.asarray(s[4]) + rot @ WRIST_CAMERA_LOOK_AT
            up = rot @ WRIST_CAMERA_UP
        else:
            jitter = self._randomization.camera_pos_jitter.get(camera, (0.0, 0.0, 0.0))
            eye = np.asarray(spec.pos) + np.asarray(jitter)
            aim = self._randomization.camera_target_jitter.get(camera, (0.0, 0.0, 0.0))
            look = np.asarray(spec.target) + np.asarray(aim)
            up = np.array([0.0, 0.0, 1.0])
        view = p.computeViewMatrix(eye.tolist(), look.tolist(), up.tolist(), physicsClientId=cid)
        proj = p.computeProjectionMatrixFOV(spec.fovy_deg, w / h, 0.01, 5.0, physicsClientId=cid)
        r = self._randomization
        to_light = -(LIGHT_DIR + np.asarray(r.light_dir_jitter))
        img = p.getCameraImage(
            w,
            h,
            viewMatrix=view,
            projectionMatrix=proj,
            lightDirection=(to_light / np.linalg.norm(to_light)).tolist(),
            lightColor=[1.0, 1.0, 1.0],
            lightAmbientCoeff=0.45,
            lightDiffuseCoeff=0.55 * r.light_intensity,
            lightSpecularCoeff=0.05,
            shadow=0,
            renderer=p.ER_TINY_RENDERER,
            flags=p.ER_NO_SEGMENTATION_MASK,
            physicsClientId=cid,
        )
        rgb = np.array(img[2], dtype=np.uint8).reshape(h, w, 4)[..., :3]  # (H, W, 3)
        depth = np.asarray(img[3]).reshape(h, w)  # (H, W), 1.0 where nothing was drawn
        rgb[depth >= 1.0] = FLOOR_RGB
        return np.ascontiguousarray(rgb)  # (H, W, 3)

    def close(self) -> None:
        for cid in (self._client, self._ik_client):
            if cid is not None and p.isConnected(cid):
                p.disconnect(cid)
        self._client = self._ik_client = None
        if self._texture_dir is not None:
            self._texture_dir.cleanup()
            self._texture_dir = None
