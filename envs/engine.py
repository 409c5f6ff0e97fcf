"""The physics-engine interface that every task is written against.

A task (scene layout, reset distribution, success predicate, scripted expert) only talks to
an :class:`Engine`; ``engines/mujoco_engine.py`` and ``engines/pybullet_engine.py`` implement
it, so a task means the same thing on both engines.

Conventions (both engines):
- World frame: z up, metres; the robot base sits at the origin; the table top is at z = 0.
- Quaternions are (w, x, y, z).
- The arm is the 7-DoF Panda-kinematics arm from ``sim_assets/robots/`` (MJCF and URDF with the
  same link lengths, joint limits and home pose); the gripper is a parallel jaw whose opening
  is the distance between the finger pads, in metres.
- The end-effector ("TCP") point is between the finger pads.
- Timing: ``control_hz`` control steps per second; each control step runs ``substeps``
  physics steps of ``physics_dt`` seconds, and ``substeps * physics_dt == 1 / control_hz``
  exactly (checked at construction, see :func:`substeps_for`).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from embodied_mm.envs import ik
from embodied_mm.envs.robot import JOINT_LIMITS

Shape = Literal["box", "cylinder", "sphere"]
TableTexture = Literal["plain", "checker", "noise"]
TABLE_TEXTURES: tuple[TableTexture, ...] = ("plain", "checker", "noise")


@dataclass(frozen=True)
class ObjectSpec:
    """One rigid body in the scene.

    ``size``: box → half-extents (x, y, z); cylinder → (radius, half_height); sphere → (radius,).
    ``mass == 0`` makes the body static (fixtures such as bin walls, a plate).
    ``collide=False`` makes it visual only (target zones, markers).
    """

    name: str
    shape: Shape
    size: tuple[float, ...]
    rgba: tuple[float, float, float, float]
    mass: float = 0.05
    pos: tuple[float, float, float] = (0.5, 0.0, 0.02)
    quat: tuple[float, float, float, float] = (1.0, 0.0, 0.0, 0.0)
    collide: bool = True
    friction: float = 1.0


@dataclass(frozen=True)
class CameraSpec:
    """A camera. ``mount="world"`` looks from ``pos`` at ``target``; ``mount="wrist"`` is fixed
    to the hand, looking along the gripper's approach axis (``pos``/``target`` ignored)."""

    name: str
    pos: tuple[float, float, float] = (1.3, 0.0, 0.7)
    target: tuple[float, float, float] = (0.45, 0.0, 0.05)
    fovy_deg: float = 50.0
    mount: Literal["world", "wrist"] = "world"


@dataclass(frozen=True)
class SceneSpec:
    """Everything an engine needs to build the world once; reset only moves and recolours."""

    objects: tuple[ObjectSpec, ...]
    cameras: tuple[CameraSpec, ...] = (
        CameraSpec("front"),
        CameraSpec("wrist", mount="wrist", fovy_deg=70.0),
    )
    image_size: tuple[int, int] = (128, 128)  # (H, W)
    table_rgba: tuple[float, float, float, float] = (0.55, 0.45, 0.35, 1.0)
    table_size: tuple[float, float] = (0.8, 1.0)  # full (x, y) extent, centred at (0.5, 0)
    # A camera for videos made for people, rendered only on request (``Engine.render`` of its
    # name, at ``presentation_size``): it is never one of ``cameras``, so never observed.
    presentation: CameraSpec | None = None
    presentation_size: tuple[int, int] = (360, 480)  # (H, W)

    def camera_and_size(self, name: str) -> tuple[CameraSpec, tuple[int, int]]:
        """The camera called ``name`` (an observed one or the presentation camera) and the
        (H, W) it renders at; KeyError naming the scene's cameras for an unknown name."""
        for cam in self.cameras:
            if cam.name == name:
                return cam, self.image_size
        if self.presentation is not None and self.presentation.name == name:
            return self.presentation, self.presentation_size
        known = [c.name for c in self.cameras] + (
            [self.presentation.name] if self.presentation is not None else []
        )
        raise KeyError(f"unknown camera {name!r}; scene has {sorted(known)}")


@dataclass
class Randomization:
    """Per-episode appearance settings, drawn by the task from the episode's seeded RNG."""

    light_dir_jitter: tuple[float, float, float] = (0.0, 0.0, 0.0)
    light_intensity: float = 1.0
    camera_pos_jitter: dict[str, tuple[float, float, float]] = field(default_factory=dict)
    # Added to a world camera's aim point (m); none in training (the camera_shift perturbation).
    camera_target_jitter: dict[str, tuple[float, float, float]] = field(default_factory=dict)
    table_rgba: tuple[float, float, float, float] | None = None
    # "plain": flat colour; "checker": 2-tone checkerboard (~5 cm squares); "noise": the colour
    # with random speckles. Each is tinted by table_rgba (or SceneSpec.table_rgba).
    table_texture: TableTexture = "plain"


def substeps_for(control_hz: float, physics_dt: float) -> int:
    """Physics steps per control step; fails unless they divide the control period exactly."""
    period = 1.0 / control_hz
    n = round(period / physics_dt)
    if n < 1 or abs(n * physics_dt - period) > 1e-9:
        raise ValueError(
            f"physics_dt={physics_dt} does not divide the control period 1/{control_hz}={period}"
        )
    return n


class Engine(abc.ABC):
    """A simulated Panda-kinematics arm on a table with the objects of a :class:`SceneSpec`."""

    name: str  # "mujoco" or "pybullet"
    physics_dt: float

    def __init__(self, scene: SceneSpec, control_hz: float = 20.0) -> None:
        self.scene = scene
        self.control_hz = control_hz
        self.substeps = substeps_for(control_hz, self.physics_dt)

    # --- episode -------------------------------------------------------------------------
    @abc.abstractmethod
    def reset(
        self,
        q_arm: np.ndarray,  # (7,) joint positions, rad
        gripper_opening: float,  # metres
        object_poses: dict[str, tuple[np.ndarray, np.ndarray]],  # name -> (pos (3,), quat (4,))
        object_rgba: dict[str, tuple[float, float, float, float]],
        randomization: Randomization,
    ) -> None:
        """Put the robot and objects in place (zero velocities), apply appearance settings."""

    @abc.abstractmethod
    def step(self, q_arm_target: np.ndarray, gripper_close: float) -> None:
        """Run one control period (``substeps`` physics steps) tracking the joint target.

        ``q_arm_target``: (7,) rad, already inside joint limits. ``gripper_close``: 0 fully
        open … 1 closed (force-limited, so it grasps objects).
        """

    # --- state ---------------------------------------------------------------------------
    @abc.abstractmethod
    def arm_joint_positions(self) -> np.ndarray:
        """(7,) rad."""

    @abc.abstractmethod
    def gripper_opening(self) -> float:
        """Distance between the finger pads, metres."""

    @abc.abstractmethod
    def ee_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """TCP position (3,) and orientation quaternion (4,) (w, x, y, z) in the world."""

    @abc.abstractmethod
    def object_pose(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """Position (3,) and quaternion (4,) of a scene object."""

    @abc.abstractmethod
    def is_grasped(self, name: str) -> bool:
        """Both fingers touch the object."""

    # --- kinematics ----------------------------------------------------------------------
    # The arm's joint limits (7, 2) rad, as the IK sees them (envs/ik.py's Kinematics).
    joint_limits: np.ndarray = JOINT_LIMITS

    @abc.abstractmethod
    def tcp_pose_and_jacobian(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """At arm joints ``q`` (7,), on a kinematic copy of the robot (the simulated state is
        left alone): TCP position (3,), quaternion (4,) wxyz, and the world-frame Jacobian
        (6, 7), linear rows first."""

    def solve_ik(self, pos: np.ndarray, quat: np.ndarray, q_init: np.ndarray) -> np.ndarray:
        """(7,) joint positions within limits that put the TCP at ``pos``/``quat``, starting
        from ``q_init``: :func:`embodied_mm.envs.ik.solve_ik` on this engine's kinematics, the
        same solver and settings on every engine. An unreachable target gives the closest
        pose found."""
        return ik.solve_ik(self, pos, quat, q_init).q

    # --- rendering -----------------------------------------------------------------------
    @abc.abstractmethod
    def render(self, camera: str) -> np.ndarray:
        """(H, W, 3) uint8 image of a camera in ``scene.cameras`` (at ``scene.image_size``) or
        of ``scene.presentation`` (at ``scene.presentation_size``)."""

    def close(self) -> None:  # noqa: B027 (optional hook)
        """Release the simulator and renderer."""
