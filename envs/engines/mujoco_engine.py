"""The :class:`~embodied_mm.envs.engine.Engine` on MuJoCo.

The robot comes from ``sim_assets/robots/panda.xml``; the table, lights, cameras and the
scene's objects are added to it with ``mujoco.MjSpec`` before compiling, so one model holds the
whole world. Rendering uses ``mujoco.Renderer`` with CPU-friendly settings (no multisampling,
no shadows, an offscreen buffer the size of the images): on llvmpipe that is ~0.3 ms per 128²
frame against ~20 ms with MuJoCo's defaults.
"""

from __future__ import annotations

import os
from pathlib import Path

# Headless machines have no X display: render through EGL unless the user chose a backend.
# This must happen before mujoco is imported, which reads MUJOCO_GL once.
if "MUJOCO_GL" not in os.environ and not os.environ.get("DISPLAY"):
    os.environ["MUJOCO_GL"] = "egl"
    os.environ.setdefault("PYOPENGL_PLATFORM", "egl")

import mujoco
import numpy as np

from embodied_mm.envs.assets import AssetError, asset_path
from embodied_mm.envs.engine import (
    TABLE_TEXTURES,
    CameraSpec,
    Engine,
    ObjectSpec,
    Randomization,
    SceneSpec,
)
from embodied_mm.envs.robot import (
    FINGER_TRAVEL,
    HOME_Q,
    N_ARM_JOINTS,
    WRIST_CAMERA_EYE,
    WRIST_CAMERA_LOOK_AT,
    WRIST_CAMERA_UP,
)

ROBOT_ASSET = "robots/panda.xml"
ARM_JOINTS = tuple(f"joint{i}" for i in range(1, 8))
FINGER_JOINTS = ("finger_left", "finger_right")
PAD_BODIES = ("left_finger", "right_finger")
LIGHT_DIR = np.array([-0.3, 0.2, -1.0])  # nominal key light: from above, slightly in front
LIGHT_DIFFUSE = 0.7
_GEOM_TYPES = {
    "box": mujoco.mjtGeom.mjGEOM_BOX,
    "cylinder": mujoco.mjtGeom.mjGEOM_CYLINDER,
    "sphere": mujoco.mjtGeom.mjGEOM_SPHERE,
}


def _all_cameras(scene: SceneSpec) -> tuple[CameraSpec, ...]:
    """The observed cameras and, when the scene has one, the presentation camera."""
    return scene.cameras + ((scene.presentation,) if scene.presentation is not None else ())


def look_at_quat(
    pos: np.ndarray, target: np.ndarray, up: np.ndarray = np.array([0.0, 0.0, 1.0])
) -> np.ndarray:
    """(4,) wxyz orientation of a MuJoCo camera (looks along its -z, y up) at ``pos`` facing
    ``target``, with ``up`` (in the same frame) pointing up in the image."""
    forward = target - pos
    forward = forward / np.linalg.norm(forward)
    right = np.cross(forward, up)
    if np.linalg.norm(right) < 1e-6:  # looking along ``up``: any perpendicular right works
        right = np.cross(forward, [0.0, 1.0, 0.0])
    right = right / np.linalg.norm(right)
    up = np.cross(right, forward)
    mat = np.stack([right, up, -forward], axis=1)  # columns: camera x, y, z in the world
    quat = np.zeros(4)
    mujoco.mju_mat2Quat(quat, mat.reshape(-1))
    return quat


class MujocoEngine(Engine):
    """MuJoCo implementation of :class:`Engine` (see its docstring for the contract)."""

    name = "mujoco"

    def __init__(
        self,
        scene: SceneSpec,
        control_hz: float = 20.0,
        physics_dt: float = 0.002,
        robot_xml: str | Path | None = None,
    ) -> None:
        """``robot_xml``: an MJCF robot to use instead of ``sim_assets/robots/panda.xml`` (it
        must have the same joint, body and site names)."""
        self.physics_dt = physics_dt
        self.robot_xml = Path(robot_xml) if robot_xml is not None else asset_path(ROBOT_ASSET)
        super().__init__(scene, control_hz)
        self.model = self._build_model(scene)
        self.model.opt.timestep = physics_dt
        self.data = mujoco.MjData(self.model)
        self._ik_data = mujoco.MjData(self.model)  # scratch state: IK never disturbs physics
        m = self.model
        self._arm_qadr = np.array([m.joint(j).qposadr[0] for j in ARM_JOINTS])
        self._arm_dadr = np.array([m.joint(j).dofadr[0] for j in ARM_JOINTS])
        self._finger_qadr = np.array([m.joint(j).qposadr[0] for j in FINGER_JOINTS])
        self._tcp = m.site("tcp").id
        pad_body_ids = [m.body(b).id for b in PAD_BODIES]
        self._pad_geoms = [
            {g for g in range(m.ngeom) if m.geom_bodyid[g] == b and m.geom_contype[g]}
            for b in pad_body_ids
        ]
        self._objects = {o.name: o for o in scene.objects}
        self._obj_body = {o.name: m.body(o.name).id for o in scene.objects}
        self._obj_geom = {o.name: m.geom(o.name).id for o in scene.objects}
        self._obj_qadr = {
            o.name: m.joint(f"{o.name}_free").qposadr[0] for o in scene.objects if o.mass > 0
        }
        self._table_geom = m.geom("table").id
        self._table_mats = {t: m.material(f"table_{t}").id for t in TABLE_TEXTURES}
        self._cam_ids = {c.name: m.camera(c.name).id for c in _all_cameras(scene)}
        self._renderers: dict[tuple[int, int], mujoco.Renderer] = {}  # one per (H, W)
        self.reset(HOME_Q, 2 * FINGER_TRAVEL, {}, {}, Randomization())

    # --- building --------------------------------------------------------------------------
    def _build_model(self, scene: SceneSpec) -> mujoco.MjModel:
        path = self.robot_xml
        if not path.is_file():
            raise AssetError(f"robot asset not found: {path}")
        try:
            spec = mujoco.MjSpec.from_file(str(path))
        except Exception as err:  # MuJoCo raises ValueError with the parser's message
            raise AssetError(f"malformed robot asset {path}: {err}") from err
        missing = [j for j in ARM_JOINTS + FINGER_JOINTS if spec.joint(j) is None]
        missing += [b for b in ("hand", *PAD_BODIES) if spec.body(b) is None]
        missing += ["tcp"] if spec.site("tcp") is None else []
        if missing:
            raise AssetError(f"robot asset {path} lacks the joints/bodies/sites {missing}")
        sizes = [scene.image_size] + ([scene.presentation_size] if scene.presentation else [])
        spec.visual.global_.offwidth = max(1, *(w for _, w in sizes))
        spec.visual.global_.offheight = max(1, *(h for h, _ in sizes))
        spec.visual.quality.offsamples = 0
        spec.visual.quality.shadowsize = 0
        spec.visual.headlight.ambient = [0.35, 0.35, 0.35]
        spec.visual.headlight.diffuse = [0.25, 0.25, 0.25]
        self._add_table(spec, scene)
        spec.worldbody.add_light(
            name="key",
            type=mujoco.mjtLightType.mjLIGHT_DIRECTIONAL,
            pos=[0.5, 0, 2.0],
            dir=list(LIGHT_DIR),
            castshadow=0,
            diffuse=[LIGHT_DIFFUSE] * 3,
        )
        for obj in scene.objects:
            self._add_object(spec, obj)
        for cam in _all_cameras(scene):
            self._add_camera(spec, cam)
        try:
            return spec.compile()
        except Exception as err:
            raise AssetError(f"cannot compile the scene built on {path}: {err}") from err

    @staticmethod
    def _add_table(spec: mujoco.MjSpec, scene: SceneSpec) -> None:
        spec.add_texture(
            name="tex_plain", type=mujoco.mjtTexture.mjTEXTURE_2D, builtin=mujoco.mjtBuiltin.mjBUILTIN_FLAT,
            rgb1=[1, 1, 1], rgb2=[1, 1, 1], width=16, height=16,
        )  # fmt: skip
        spec.add_texture(
            name="tex_checker", type=mujoco.mjtTexture.mjTEXTURE_2D, builtin=mujoco.mjtBuiltin.mjBUILTIN_CHECKER,
            rgb1=[1, 1, 1], rgb2=[0.7, 0.7, 0.7], width=64, height=64,
        )  # fmt: skip
        spec.add_texture(
            name="tex_noise", type=mujoco.mjtTexture.mjTEXTURE_2D, builtin=mujoco.mjtBuiltin.mjBUILTIN_FLAT,
            rgb1=[1, 1, 1], rgb2=[1, 1, 1], mark=mujoco.mjtMark.mjMARK_RANDOM, random=0.15,
            markrgb=[0.6, 0.6, 0.6], width=128, height=128,
        )  # fmt: skip
        for t in TABLE_TEXTURES:
            mat = spec.add_material(name=f"table_{t}", rgba=list(scene.table_rgba))
            mat.textures[mujoco.mjtTextureRole.mjTEXROLE_RGB] = f"tex_{t}"
            mat.texrepeat = [8, 10] if t == "checker" else [1, 1]
        sx, sy = scene.table_size
        spec.worldbody.add_geom(
            name="table", type=mujoco.mjtGeom.mjGEOM_BOX, size=[sx / 2, sy / 2, 0.02],
            pos=[0.5, 0.0, -0.02], material="table_plain", friction=[1.0, 0.005, 0.0001],
        )  # fmt: skip
        spec.worldbody.add_geom(
            name="floor", type=mujoco.mjtGeom.mjGEOM_PLANE, size=[3, 3, 0.1], pos=[0, 0, -0.75],
            rgba=[0.3, 0.32, 0.35, 1], contype=0, conaffinity=0,
        )  # fmt: skip

    @staticmethod
    def _add_object(spec: mujoco.MjSpec, obj: ObjectSpec) -> None:
        if obj.shape not in _GEOM_TYPES:
            raise ValueError(f"object {obj.name!r}: unknown shape {obj.shape!r}")
        body = spec.worldbody.add_body(name=obj.name, pos=list(obj.pos), quat=list(obj.quat))
        if obj.mass > 0:
            body.add_freejoint(name=f"{obj.name}_free")
        size = list(obj.size) + [0.0] * (3 - len(obj.size))
        geom = body.add_geom(
            name=obj.name, type=_GEOM_TYPES[obj.shape], size=size, rgba=list(obj.rgba),
            friction=[obj.friction, 0.005, 0.0001],
        )  # fmt: skip
        if obj.mass > 0:
            geom.mass = obj.mass
        if not obj.collide:
            geom.contype = 0
            geom.conaffinity = 0

    @staticmethod
    def _add_camera(spec: mujoco.MjSpec, cam: CameraSpec) -> None:
        if cam.mount == "wrist":
            quat = look_at_quat(WRIST_CAMERA_EYE, WRIST_CAMERA_LOOK_AT, WRIST_CAMERA_UP)
            spec.body("hand").add_camera(
                name=cam.name, pos=list(WRIST_CAMERA_EYE), quat=list(quat), fovy=cam.fovy_deg
            )
        else:
            pos, target = np.array(cam.pos), np.array(cam.target)
            spec.worldbody.add_camera(
                name=cam.name,
                pos=list(pos),
                quat=list(look_at_quat(pos, target)),
                fovy=cam.fovy_deg,
            )

    # --- episode ---------------------------------------------------------------------------
    def reset(
        self,
        q_arm: np.ndarray,
        gripper_opening: float,
        object_poses: dict[str, tuple[np.ndarray, np.ndarray]],
        object_rgba: dict[str, tuple[float, float, float, float]],
        randomization: Randomization,
    ) -> None:
        m, d = self.model, self.data
        mujoco.mj_resetData(m, d)
        finger = float(np.clip(gripper_opening / 2, 0.0, FINGER_TRAVEL))
        d.qpos[self._arm_qadr] = q_arm
        d.qpos[self._finger_qadr] = finger
        d.ctrl[:N_ARM_JOINTS] = q_arm
        d.ctrl[N_ARM_JOINTS] = finger
        for name, (pos, quat) in object_poses.items():
            if name not in self._objects:
                raise KeyError(f"unknown object {name!r}; scene has {sorted(self._objects)}")
            if name in self._obj_qadr:
                adr = self._obj_qadr[name]
                d.qpos[adr : adr + 3] = pos
                d.qpos[adr + 3 : adr + 7] = quat
            else:  # a fixture: move the body itself
                m.body_pos[self._obj_body[name]] = pos
                m.body_quat[self._obj_body[name]] = quat
        for name, rgba in object_rgba.items():
            m.geom_rgba[self._obj_geom[name]] = rgba
        self._apply_randomization(randomization)
        mujoco.mj_forward(m, d)

    def _apply_randomization(self, rnd: Randomization) -> None:
        m = self.model
        direction = LIGHT_DIR + np.asarray(rnd.light_dir_jitter)
        m.light_dir[0] = direction / np.linalg.norm(direction)
        m.light_diffuse[0] = LIGHT_DIFFUSE * rnd.light_intensity
        for cam in self.scene.cameras:
            if cam.mount != "world":
                continue
            pos = np.array(cam.pos) + np.asarray(rnd.camera_pos_jitter.get(cam.name, (0, 0, 0)))
            cid = self._cam_ids[cam.name]
            m.cam_pos[cid] = pos
            aim = np.array(cam.target) + np.asarray(
                rnd.camera_target_jitter.get(cam.name, (0, 0, 0))
            )
            m.cam_quat[cid] = look_at_quat(pos, aim)
        if rnd.table_texture not in self._table_mats:
            raise ValueError(f"table_texture {rnd.table_texture!r} not in {TABLE_TEXTURES}")
        mat = self._table_mats[rnd.table_texture]
        m.geom_matid[self._table_geom] = mat
        m.mat_rgba[mat] = rnd.table_rgba if rnd.table_rgba is not None else self.scene.table_rgba

    def step(self, q_arm_target: np.ndarray, gripper_close: float) -> None:
        d = self.data
        d.ctrl[:N_ARM_JOINTS] = q_arm_target
        d.ctrl[N_ARM_JOINTS] = FINGER_TRAVEL * (1.0 - float(np.clip(gripper_close, 0.0, 1.0)))
        mujoco.mj_step(self.model, d, nstep=self.substeps)

    # --- state -----------------------------------------------------------------------------
    def arm_joint_positions(self) -> np.ndarray:
        return self.data.qpos[self._arm_qadr].copy()

    def gripper_opening(self) -> float:
        return float(self.data.qpos[self._finger_qadr].sum())

    def ee_pose(self) -> tuple[np.ndarray, np.ndarray]:
        return self._site_pose(self.data)

    def _site_pose(self, data: mujoco.MjData) -> tuple[np.ndarray, np.ndarray]:
        quat = np.zeros(4)
        mujoco.mju_mat2Quat(quat, data.site_xmat[self._tcp])
        return data.site_xpos[self._tcp].copy(), quat

    def object_pose(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        if name not in self._obj_body:
            raise KeyError(f"unknown object {name!r}; scene has {sorted(self._objects)}")
        b = self._obj_body[name]
        return self.data.xpos[b].copy(), self.data.xquat[b].copy()

    def is_grasped(self, name: str) -> bool:
        d = self.data
        geom = self._obj_geom[name]
        pairs = d.contact.geom[: d.ncon]  # (ncon, 2)
        touching = [False, False]
        for g1, g2 in pairs:
            other = g2 if g1 == geom else g1 if g2 == geom else None
            if other is None:
                continue
            for i, pads in enumerate(self._pad_geoms):
                touching[i] |= int(other) in pads
        return all(touching)

    # --- kinematics ------------------------------------------------------------------------
    def tcp_pose_and_jacobian(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        m, d = self.model, self._ik_data
        d.qpos[self._arm_qadr] = q
        mujoco.mj_kinematics(m, d)
        mujoco.mj_comPos(m, d)  # mj_jacSite reads the com-based quantities this computes
        pos, quat = self._site_pose(d)
        jacp, jacr = np.zeros((3, m.nv)), np.zeros((3, m.nv))
        mujoco.mj_jacSite(m, d, jacp, jacr, self._tcp)
        return pos, quat, np.vstack([jacp[:, self._arm_dadr], jacr[:, self._arm_dadr]])

    # --- rendering -------------------------------------------------------------------------
    def render(self, camera: str) -> np.ndarray:
        _, (h, w) = self.scene.camera_and_size(camera)  # KeyError for an unknown name
        renderer = self._renderers.get((h, w))
        if renderer is None:  # created on first use: EGL contexts do not survive fork
            renderer = mujoco.Renderer(self.model, height=h, width=w)
            flags = renderer.scene.flags
            flags[mujoco.mjtRndFlag.mjRND_SHADOW] = 0
            flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = 0
            flags[mujoco.mjtRndFlag.mjRND_SKYBOX] = 0
            self._renderers[(h, w)] = renderer
        renderer.update_scene(self.data, camera=camera)
        return renderer.render()

    def close(self) -> None:
        for renderer in self._renderers.values():
            renderer.close()
        self._renderers.clear()
