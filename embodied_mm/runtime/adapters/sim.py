"""The simulator as a robot: any of our tabletop tasks, on MuJoCo or PyBullet.

``SimRobot("pick_lift", engine="pybullet")`` builds the task's env directly; a registered
Gymnasium id (``SimRobot("embodied_mm/PickLift-v0")``) goes through ``gymnasium.make``. One
``send_action`` is one env step. The simulated world stands still between steps, so the frames
it rendered show it as it is until the next step: :meth:`SimRobot.get_observation` stamps them
when they are read, as a camera's latest frame is (a frame read before the first step is not
stale however long the policy took to load), and the stale-observation check then measures
what it measures on a robot: the time from reading the observation to filtering its action.

Actions are the env's (``ee_delta`` (7,) in [-1, 1], or ``joint_pos`` (8,)). Holding still is a
zero delta for ``ee_delta`` and the present joint positions for ``joint_pos``, with the gripper
at its last command in both (a hold must not drop a grasped object).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from embodied_mm.features import ACTION, OBS_STATE, env_obs_to_frame, image_key
from embodied_mm.processor.robots import robot_layout
from embodied_mm.runtime.robot import FeatureSpec, Robot, RobotObservation, check_action
from embodied_mm.runtime.safety import SafetyConfig

# agent_pos of our envs, by name (embodied_mm/processor/robots/panda.py)
LAYOUT = robot_layout("panda")
JOINTS = LAYOUT.dims("joints")
TCP_XYZ = LAYOUT.slice("tcp_xyz")
JOINT_SPEED_RAD_S = 2.0  # rate limit for joint_pos commands (the Panda's slowest joint: 2.6)
JAW_SPEED_M_S = 0.2


def make_env(env_id: str, **kwargs: Any):
    """A registered Gymnasium id, or one of our task names (``pick_lift``, ``reach`` ...)."""
    import gymnasium as gym

    import embodied_mm.envs  # noqa: F401  (registers our ids, once it does)

    if env_id in gym.registry:
        return gym.make(env_id, **kwargs)
    from embodied_mm.envs.tabletop_env import TabletopEnv
    from embodied_mm.envs.tasks import TASKS

    if env_id in TASKS:
        return TabletopEnv(task=env_id, **kwargs)
    known = sorted(TASKS.names()) + sorted(k for k in gym.registry if k.startswith("embodied_mm"))
    raise KeyError(f"unknown sim env {env_id!r}; known: {', '.join(known)}")


class SimRobot(Robot):
    def __init__(self, env_id: str, seed: int | None = 0, **env_kwargs: Any) -> None:
        super().__init__()
        self.name = f"sim:{env_id}"
        self.env_id = env_id
        self.env_kwargs = env_kwargs
        self.seed = seed
        self.env: Any = None
        self._obs: dict[str, Any] | None = None
        self._gripper_cmd: float | None = None

    # --- lifecycle ---------------------------------------------------------------------------
    @property
    def is_connected(self) -> bool:
        return self.env is not None

    def connect(self) -> None:
        self.env = make_env(self.env_id, **self.env_kwargs)
        self.reset_episode(self.seed)

    def disconnect(self) -> None:
        if self.env is not None:
            self.env.close()
            self.env = None

    def reset_episode(self, seed: int | None = None) -> None:
        obs, info = self.env.reset(seed=seed)
        self._set(obs, info)
        self.episode_done = False
        self._gripper_cmd = None

    def _set(self, obs: dict[str, Any], info: dict[str, Any]) -> None:
        self._obs = obs
        self.info = dict(info)
        self.task = info.get("task", self.task)

    @property
    def action_mode(self) -> str:
        return getattr(self.env.unwrapped, "action_mode", "ee_delta")

    # --- features ----------------------------------------------------------------------------
    @property
    def observation_features(self) -> dict[str, FeatureSpec]:
        space = self.env.observation_space
        feats = {
            image_key(cam): {
                "dtype": "uint8",
                "shape": sub.shape,
                "names": ["height", "width", "channel"],
            }
            for cam, sub in space["pixels"].spaces.items()
        }
        shape = space["agent_pos"].shape
        names = list(LAYOUT.state_names) if shape == (LAYOUT.state_dim,) else None
        feats[OBS_STATE] = {"dtype": "float32", "shape": shape, "names": names}
        return feats

    @property
    def action_features(self) -> dict[str, FeatureSpec]:
        from embodied_mm.envs.tabletop_env import ACTION_FIELDS

        return {
            ACTION: {
                "dtype": "float32",
                "shape": self.env.action_space.shape,
                "names": list(ACTION_FIELDS.get(self.action_mode, ())),
            }
        }

    # --- I/O ---------------------------------------------------------------------------------
    @property
    def env_observation(self) -> dict[str, Any]:
        """The env's latest observation in its own layout (``pixels``, ``agent_pos``)."""
        assert self._obs is not None, "connect() first"
        return self._obs

    def get_observation(self) -> RobotObservation:
        assert self._obs is not None, "connect() first"
        frame = env_obs_to_frame(self._obs, self.task or "")
        frame.pop("task")  # the loop sets the instruction
        now = time.monotonic()  # the world is as rendered until the next step
        return RobotObservation(frame, {cam: now for cam in self._obs["pixels"]})

    def send_action(self, action: np.ndarray) -> None:
        a = check_action(self, action).astype(np.float32)
        obs, _, terminated, truncated, info = self.env.step(a)
        self._gripper_cmd = float(a[-1])
        self._set(obs, info)
        self.episode_done = bool(terminated or truncated)

    def hold_action(self) -> np.ndarray:
        assert self._obs is not None, "connect() first"
        state = np.asarray(self._obs["agent_pos"], dtype=np.float64)
        if self.action_mode == "joint_pos":
            jaw = (
                self._gripper_cmd
                if self._gripper_cmd is not None
                else state[LAYOUT.dims("gripper")[0]]
            )
            return np.append(state[JOINTS], jaw)
        grip = self._gripper_cmd if self._gripper_cmd is not None else -1.0  # envs start open
        return np.append(np.zeros(6), grip)

    # --- safety ------------------------------------------------------------------------------
    def default_safety(self) -> SafetyConfig:
        space = self.env.action_space
        if self.action_mode == "joint_pos":
            return SafetyConfig(
                action_low=space.low,
                action_high=space.high,
                gripper_index=len(JOINTS),  # joint_pos actions: the joints, then the jaw
                gripper_low=float(space.low[-1]),
                gripper_high=float(space.high[-1]),
                max_velocity=np.array([JOINT_SPEED_RAD_S] * len(JOINTS) + [JAW_SPEED_M_S]),
            )
        from embodied_mm.envs.tabletop_env import TCP_HIGH, TCP_LOW

        margin = 0.01  # the env clamps TCP targets to its box; only hold clearly wild targets
        return SafetyConfig(
            action_low=space.low,
            action_high=space.high,
            gripper_index=6,
            gripper_low=-1.0,
            gripper_high=1.0,
            workspace_low=TCP_LOW - margin,
            workspace_high=TCP_HIGH + margin,
        )

    def ee_position_fn(self) -> Callable[[np.ndarray], np.ndarray] | None:
        if self.action_mode != "ee_delta":
            return None  # joint targets would need forward kinematics; limits bound them
        from embodied_mm.envs.tabletop_env import POS_SCALE

        def target(action: np.ndarray) -> np.ndarray:
            tcp = np.asarray(self._obs["agent_pos"], dtype=np.float64)[TCP_XYZ]  # (3,)
            return tcp + np.asarray(action[:3]) * POS_SCALE

        return target
