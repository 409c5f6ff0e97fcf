"""Scripted experts: phase machines that steer the TCP with IK and say what they are doing.

A task lists its :class:`Phase` objects (``Task.expert_phases``); :class:`ScriptedExpert` runs
them against the env's engine and emits actions in the env's own action space, together with
the current phase's text as the ``plan`` label a recorder stores beside the action::

    expert = make_expert(env)
    obs, info = env.reset(seed=0)
    action, plan = expert.act(obs)   # e.g. plan == "move above the red cube"

Experts read privileged simulator state (object poses) through the engine; they are demo
generators, not policies to evaluate.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import gymnasium as gym
import numpy as np

from embodied_mm.envs import rotations
from embodied_mm.envs.engine import Engine
from embodied_mm.envs.robot import TCP_DOWN_QUAT

if TYPE_CHECKING:
    from embodied_mm.envs.tabletop_env import TabletopEnv

OPEN, CLOSED = -1.0, 1.0  # gripper commands, in the ee_delta convention


@dataclass
class Phase:
    """One step of a scripted skill.

    The phase drives the TCP to ``goal(engine)`` (pointing down, turned ``yaw(engine)`` about
    world z from :data:`TCP_DOWN_QUAT`) at no more than ``speed`` m per control step, with the
    gripper at ``gripper``. It ends once the TCP is within ``tol`` of the goal for ``hold``
    steps, or as soon as ``until(engine)`` holds, or after ``timeout`` steps. If
    ``retry_if(engine)`` holds, the expert jumps back to phase ``retry_to`` (e.g. re-approach
    a cube that slipped away).
    """

    plan: str
    goal: Callable[[Engine], np.ndarray]
    gripper: float = OPEN
    yaw: Callable[[Engine], float] | None = None
    tol: float = 0.006
    speed: float = 0.03
    hold: int = 0
    until: Callable[[Engine], bool] | None = None
    timeout: int = 80
    retry_if: Callable[[Engine], bool] | None = None
    retry_to: int = 0


class ScriptedExpert:
    """Runs a task's phases on an env; one instance follows the env across episodes."""

    def __init__(self, env: gym.Env) -> None:
        self.env: TabletopEnv = env.unwrapped  # type: ignore[assignment]
        self._episode_index = -1
        self.phases: list[Phase] = []
        self.index = 0
        self._steps_in_phase = 0
        self._reached_steps = 0
        self._yaw = 0.0

    def _sync_episode(self) -> None:
        if self.env.episode_index != self._episode_index:
            self._episode_index = self.env.episode_index
            self.phases = self.env.task.expert_phases(self.env.episode)
            # Phases without a yaw keep the last one; start every episode from the home yaw so
            # an episode's actions depend on its seed only, not on the episodes before it.
            self._yaw = 0.0
            self._enter(0)

    def _enter(self, index: int) -> None:
        self.index = min(index, len(self.phases) - 1)
        self._steps_in_phase = 0
        self._reached_steps = 0

    @property
    def plan(self) -> str:
        """The current phase's text."""
        self._sync_episode()
        return self.phases[self.index].plan

    def act(self, obs: object = None) -> tuple[np.ndarray, str]:
        """The next action (in the env's action space) and the current plan text.

        ``obs`` is accepted for the policy-like signature; the expert reads the engine.
        """
        self._sync_episode()
        engine = self.env.engine
        self._advance(engine)
        phase = self.phases[self.index]
        self._steps_in_phase += 1
        pos, quat = engine.ee_pose()
        goal = phase.goal(engine)
        goal_quat = self._goal_quat(phase, engine)
        delta = goal - pos
        dist = float(np.linalg.norm(delta))
        if dist > phase.speed:
            delta *= phase.speed / dist
        rot = rotations.quat_error(goal_quat, quat)  # (3,) world-frame rotation vector
        return self.env.command_to_action(delta, rot, phase.gripper), phase.plan

    def _goal_quat(self, phase: Phase, engine: Engine) -> np.ndarray:
        if phase.yaw is not None:
            self._yaw = phase.yaw(engine)
        return rotations.quat_mul(rotations.yaw_quat(self._yaw), TCP_DOWN_QUAT)

    def _advance(self, engine: Engine) -> None:
        """Move to the next phase while the current one is complete."""
        for _ in range(len(self.phases)):
            phase = self.phases[self.index]
            if phase.retry_if is not None and phase.retry_if(engine):
                self._enter(phase.retry_to)
                continue
            pos, quat = engine.ee_pose()
            near = np.linalg.norm(phase.goal(engine) - pos) < phase.tol
            aligned = (
                np.linalg.norm(rotations.quat_error(self._goal_quat(phase, engine), quat)) < 0.05
            )
            self._reached_steps = self._reached_steps + 1 if near and aligned else 0
            done = (
                self._reached_steps > phase.hold
                or (phase.until is not None and phase.until(engine))
                or self._steps_in_phase >= phase.timeout
            )
            if not done or self.index == len(self.phases) - 1:
                return
            self._enter(self.index + 1)


def make_expert(env: gym.Env) -> ScriptedExpert:
    """The scripted expert of ``env``'s task; works with either action mode."""
    return ScriptedExpert(env)
