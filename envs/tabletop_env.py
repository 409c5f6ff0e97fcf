"""The Gymnasium env: one language-conditioned tabletop task on a chosen engine.

Observation (gym-aloha / gym-pusht layout, mapped to LeRobot keys by
``embodied_mm.features.env_obs_to_frame``)::

    {"pixels": {"front": (H, W, 3) uint8, "wrist": (H, W, 3) uint8},
     "agent_pos": (15,) float32}   # 7 joints (rad), jaw opening (m), TCP xyz (m), TCP quat wxyz

Actions (``action_mode``):

- ``"ee_delta"``: (7,) in [-1, 1]: TCP translation (× ``POS_SCALE`` m), rotation about the
  fixed world x, y, z axes (× ``ROT_SCALE`` rad), gripper (-1 open … 1 closed). Turned into
  joint targets by the engine's IK.
- ``"joint_pos"``: (8,): 7 joint targets (rad, within limits) and the jaw opening (m, 0…0.08).

Control runs at 20 Hz. The simulator and renderer are created on the first ``reset``, so
``gymnasium.make_vec(id, n, vectorization_mode="async")`` builds them inside the workers.
EGL does not survive ``fork``: if this process has already rendered, start the workers with
``vector_kwargs={"context": "forkserver"}`` (or ``"spawn"``) instead of the default fork. ``info["task"]`` holds the
instruction (also ``env.task_instruction``); ``info["is_success"]`` the task's predicate.
Out-of-range actions are clipped and counted (``info["action_clipped"]`` this step,
``info["n_clipped_actions"]`` this episode); NaN/inf or wrongly shaped actions raise. ``render()`` returns the latest front-camera frame;
``env.timing`` accumulates seconds spent in physics, IK and rendering (for ``bench envs``).
``perturb={"camera_shift": 2, ...}`` applies factors of :mod:`embodied_mm.envs.perturbations`
(robustness evaluation: camera, lighting, objects, sensing, latency, instruction wording).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, Literal

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from embodied_mm.envs import rotations
from embodied_mm.envs.domain_randomization import sample_randomization
from embodied_mm.envs.engine import CameraSpec, Engine, Randomization, SceneSpec
from embodied_mm.envs.engines import engine_class
from embodied_mm.envs.perturbations import Context, make_perturbation
from embodied_mm.envs.presentation import PRESENTATION_CAMERA, PRESENTATION_SIZE
from embodied_mm.envs.robot import (
    HOME_Q,
    JOINT_LIMITS,
    MAX_OPENING,
    N_ARM_JOINTS,
    TCP_DOWN_QUAT,
)
from embodied_mm.envs.tasks import get_task
from embodied_mm.envs.tasks.base import SPLITS, Episode, Task

ActionMode = Literal["ee_delta", "joint_pos"]
ACTION_FIELDS: dict[str, tuple[str, ...]] = {
    "ee_delta": ("dx", "dy", "dz", "droll", "dpitch", "dyaw", "gripper"),
    "joint_pos": (*(f"joint{i}" for i in range(1, 8)), "gripper_opening"),
}
CONTROL_HZ = 20.0
POS_SCALE = 0.04  # m per control step at |action| = 1 (0.8 m/s)
ROT_SCALE = 0.2  # rad per control step at |action| = 1
# The TCP targets of ee_delta stay in this box: over the table, jaws above its surface.
TCP_LOW = np.array([0.15, -0.45, 0.012])
TCP_HIGH = np.array([0.85, 0.45, 0.6])
RESET_OPTIONS = ("domain_randomization", "instruction_split")
# The front camera faces the robot across the table, close enough that 4 cm cubes span ~8 px
# at 128²; the wrist camera rides the hand (pose in envs/robot.py).
CAMERAS = (
    CameraSpec("front", pos=(1.0, 0.0, 0.55), target=(0.48, 0.0, 0.05), fovy_deg=45.0),
    CameraSpec("wrist", mount="wrist", fovy_deg=70.0),
)


def _state_bounds() -> tuple[np.ndarray, np.ndarray]:
    """Bounds of ``agent_pos`` (15,): joints with a margin for simulators' soft limits, jaw
    opening, TCP position (m) and quaternion."""
    margin = 0.2
    low = np.concatenate([JOINT_LIMITS[:, 0] - margin, [-0.01], [-2.0] * 3, [-1.01] * 4])
    high = np.concatenate(
        [JOINT_LIMITS[:, 1] + margin, [MAX_OPENING + 0.01], [2.0] * 3, [1.01] * 4]
    )
    return low.astype(np.float32), high.astype(np.float32)


class TabletopEnv(gym.Env):
    """A tabletop manipulation task from :data:`embodied_mm.envs.tasks.TASKS`."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": int(CONTROL_HZ)}  # noqa: RUF012

    def __init__(
        self,
        task: str = "pick_lift",
        engine: str = "mujoco",
        action_mode: ActionMode = "ee_delta",
        image_size: int | tuple[int, int] = 128,
        domain_randomization: bool = True,
        instruction_split: str = "train",
        reward_type: Literal["sparse", "dense"] = "sparse",
        render_mode: str | None = "rgb_array",
        max_episode_steps: int | None = None,
        perturb: Mapping[str, int | str] | None = None,
    ) -> None:
        self.task: Task = get_task(task)
        if action_mode not in ACTION_FIELDS:
            raise ValueError(f"action_mode {action_mode!r} is not one of {list(ACTION_FIELDS)}")
        if render_mode not in (None, *self.metadata["render_modes"]):
            raise ValueError(f"render_mode {render_mode!r} is not one of [None, 'rgb_array']")
        if reward_type not in ("sparse", "dense"):
            raise ValueError(f"reward_type {reward_type!r} is not 'sparse' or 'dense'")
        if instruction_split not in SPLITS:
            raise ValueError(f"instruction_split {instruction_split!r} is not one of {SPLITS}")
        h, w = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
        if h < 1 or w < 1:
            raise ValueError(f"image_size must be positive, got {image_size}")
        self.engine_name = engine
        self._engine_cls = engine_class(engine)  # fails now, in the parent, for a bad name
        self.action_mode: ActionMode = action_mode
        self.domain_randomization = domain_randomization
        self.instruction_split = instruction_split
        self.reward_type = reward_type
        self.render_mode = render_mode
        self.max_episode_steps = max_episode_steps or self.task.max_steps
        self.scene = SceneSpec(objects=self.task.objects(), cameras=CAMERAS, image_size=(h, w),
                               presentation=PRESENTATION_CAMERA,
                               presentation_size=PRESENTATION_SIZE)  # fmt: skip
        # {factor: level} of envs/perturbations (UsageError for unknown ones); none: unchanged
        self.perturbation = make_perturbation(perturb)
        self.scene = self.perturbation.scene(self.scene)
        self.cameras: tuple[CameraSpec, ...] = self.scene.cameras

        image = spaces.Box(0, 255, shape=(h, w, 3), dtype=np.uint8)
        self.observation_space = spaces.Dict(
            {
                "pixels": spaces.Dict({c.name: image for c in self.cameras}),
                "agent_pos": spaces.Box(*_state_bounds(), dtype=np.float32),
            }
        )
        if action_mode == "ee_delta":
            self.action_space = spaces.Box(-1.0, 1.0, shape=(7,), dtype=np.float32)
        else:
            low = np.append(JOINT_LIMITS[:, 0], 0.0).astype(np.float32)
            high = np.append(JOINT_LIMITS[:, 1], MAX_OPENING).astype(np.float32)
            self.action_space = spaces.Box(low, high, dtype=np.float32)

        self.engine: Engine | None = None  # built on first reset (see module docstring)
        self.episode: Episode | None = None
        self.episode_index = -1  # lets experts notice a new episode
        self.task_instruction = ""
        self.elapsed_steps = 0
        self.n_clipped_actions = 0
        self.timing = {"physics": 0.0, "ik": 0.0, "render": 0.0, "steps": 0}  # seconds
        self._last_front: np.ndarray | None = None

    # --- Gymnasium API -----------------------------------------------------------------------
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        super().reset(seed=seed)
        options = dict(options or {})
        unknown = sorted(set(options) - set(RESET_OPTIONS))
        if unknown:
            raise ValueError(f"unknown reset options {unknown}; known: {list(RESET_OPTIONS)}")
        randomize = bool(options.get("domain_randomization", self.domain_randomization))
        split = options.get("instruction_split", self.instruction_split)
        if self.engine is None:
            self.engine = self._engine_cls(self.scene, control_hz=CONTROL_HZ)
        rng = self.np_random
        self.episode = self.task.sample(rng, randomize_colors=randomize)
        self.task_instruction = self.task.instruction(self.episode, rng, split)
        appearance = sample_randomization(rng, self.scene) if randomize else Randomization()
        q0 = HOME_Q
        if self.perturbation:  # its own generators: the episode's draws above stay the same
            ctx = Context(self.task, self.scene, self.action_mode, split)
            self.perturbation.seed(seed)
            self.perturbation.episode(self.episode, ctx)
            self.task_instruction = self.perturbation.instruction(
                self.task_instruction, self.episode, ctx
            )
            self.perturbation.appearance(appearance, ctx)
            q0 = self.perturbation.initial_joints(HOME_Q.copy())
            self.perturbation.start(self._hold_action(q0))
        self.engine.reset(q0, MAX_OPENING, self.episode.poses, self.episode.rgba, appearance)
        self.episode_index += 1
        self.elapsed_steps = 0
        self.n_clipped_actions = 0
        obs = self._observe()
        return obs, {"task": self.task_instruction, "is_success": False, "n_clipped_actions": 0}

    def step(self, action: np.ndarray) -> tuple[dict[str, Any], float, bool, bool, dict[str, Any]]:
        if self.engine is None or self.episode is None:
            raise RuntimeError("call reset() before step()")
        a, n_clipped = self._validate(action)
        self.n_clipped_actions += n_clipped
        a = self.perturbation.act(a)  # e.g. action latency; unchanged without perturbation
        q_target, close = self._targets(a)
        t0 = time.perf_counter()
        self.engine.step(q_target, close)
        self.timing["physics"] += time.perf_counter() - t0
        self.timing["steps"] += 1
        self.elapsed_steps += 1
        obs = self._observe()
        success = self.task.is_success(self.engine, self.episode)
        if self.reward_type == "sparse":
            reward = float(success)
        else:
            reward = self.task.dense_reward(self.engine, self.episode) + float(success)
        truncated = self.elapsed_steps >= self.max_episode_steps and not success
        info = {
            "task": self.task_instruction,
            "is_success": success,
            "action_clipped": n_clipped,
            "n_clipped_actions": self.n_clipped_actions,
        }
        return obs, reward, success, truncated, info

    def render(self) -> np.ndarray | None:
        if self.render_mode is None:
            return None
        if self._last_front is None:
            raise RuntimeError("call reset() before render()")
        return self._last_front.copy()

    def render_presentation(self) -> np.ndarray:
        """(360, 480, 3) uint8: the presentation camera's view now (videos for people; it is
        never part of the observation, and is rendered only when this is called)."""
        if self.engine is None:
            raise RuntimeError("call reset() before render_presentation()")
        return self.engine.render(PRESENTATION_CAMERA.name)

    def close(self) -> None:
        if self.engine is not None:
            self.engine.close()
            self.engine = None

    # --- actions -----------------------------------------------------------------------------
    def _validate(self, action: Any) -> tuple[np.ndarray, int]:
        fields = ACTION_FIELDS[self.action_mode]
        try:
            a = np.asarray(action, dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise ValueError(f"action must be numeric ({', '.join(fields)}): {err}") from err
        if a.shape != (len(fields),):
            raise ValueError(
                f"action has shape {a.shape}; action_mode {self.action_mode!r} expects "
                f"({len(fields)},) = ({', '.join(fields)})"
            )
        bad = [f for f, v in zip(fields, a, strict=True) if not np.isfinite(v)]
        if bad:
            raise ValueError(f"action has NaN/inf in {bad}")
        low = self.action_space.low.astype(np.float64)
        high = self.action_space.high.astype(np.float64)
        clipped = np.clip(a, low, high)
        return clipped, int(np.count_nonzero(clipped != a))

    def _hold_action(self, q: np.ndarray) -> np.ndarray:
        """The action that keeps the robot still with open jaws at joints ``q`` (7,)."""
        if self.action_mode == "joint_pos":
            return np.append(q, MAX_OPENING)
        return np.array([0.0] * 6 + [-1.0])

    def _targets(self, a: np.ndarray) -> tuple[np.ndarray, float]:
        """Joint targets (7,) and gripper closure (0 open … 1 closed) of a valid action."""
        assert self.engine is not None
        if self.action_mode == "joint_pos":
            return a[:N_ARM_JOINTS], 1.0 - a[N_ARM_JOINTS] / MAX_OPENING
        pos, quat = self.engine.ee_pose()
        target_pos = np.clip(pos + a[:3] * POS_SCALE, TCP_LOW, TCP_HIGH)
        target_quat = rotations.quat_mul(rotations.rpy_quat(a[3:6] * ROT_SCALE), quat)
        t0 = time.perf_counter()
        q = self.engine.solve_ik(target_pos, target_quat, self.engine.arm_joint_positions())
        self.timing["ik"] += time.perf_counter() - t0
        return q, (a[6] + 1.0) / 2.0

    def command_to_action(
        self, delta_pos: np.ndarray, rotvec: np.ndarray, gripper: float
    ) -> np.ndarray:
        """An action in this env's space that moves the TCP by ``delta_pos`` (m), turns it by
        ``rotvec`` (world-frame rotation vector, rad) and sets the gripper (-1 open … 1
        closed), as far as one step allows. Used by the scripted experts."""
        assert self.engine is not None
        if self.action_mode == "ee_delta":
            a = np.concatenate([delta_pos / POS_SCALE, rotvec / ROT_SCALE, [gripper]])
            return np.clip(a, -1.0, 1.0).astype(np.float32)
        angle = float(np.linalg.norm(rotvec))
        if angle > ROT_SCALE:
            rotvec = rotvec * (ROT_SCALE / angle)
        pos, quat = self.engine.ee_pose()
        target_pos = np.clip(pos + delta_pos, TCP_LOW, TCP_HIGH)
        target_quat = rotations.quat_mul(rotations.rotvec_quat(rotvec), quat)
        q = self.engine.solve_ik(target_pos, target_quat, self.engine.arm_joint_positions())
        opening = MAX_OPENING * (1.0 - float(np.clip(gripper, -1.0, 1.0))) / 2.0
        return np.append(q, opening).astype(np.float32)

    # --- observations --------------------------------------------------------------------------
    def _observe(self) -> dict[str, Any]:
        assert self.engine is not None
        t0 = time.perf_counter()
        pixels = {c.name: self.engine.render(c.name) for c in self.cameras}
        self.timing["render"] += time.perf_counter() - t0
        pixels = self.perturbation.observe(pixels)  # image noise, blur, dropped frames
        self._last_front = pixels[self.cameras[0].name]
        pos, quat = self.engine.ee_pose()
        # q and -q are the same rotation and engines pick either; keep the hemisphere of the
        # pointing-down pose, so the state is continuous where the arm works (near w = 0 the
        # usual w >= 0 rule would flip sign between steps).
        if quat @ TCP_DOWN_QUAT < 0:
            quat = -quat
        state = np.concatenate(
            [self.engine.arm_joint_positions(), [self.engine.gripper_opening()], pos, quat]
        ).astype(np.float32)  # (15,)
        return {"pixels": pixels, "agent_pos": state}
