"""DAgger in simulation: the policy drives, the scripted expert labels every frame.

A policy trained on expert demonstrations drifts to states no demo visited, and nothing in
the demos says how to come back (the compounding error of behaviour cloning). DAgger (Ross
et al., 2011) records the states the *policy* reaches and labels each with the expert's
action there; training on those labels teaches the way back.

:class:`DaggerSource` is a :class:`~embodied_mm.data.recorder.DemoSource`, so ``record``
commits its episodes like demonstrations (seed order, resumable, ``--workers``): each step the
task's scripted expert (:mod:`embodied_mm.envs.expert`, which reads the simulator's state and
so can act from any state) gives the stored action and plan, while the policy's chunk, through
the same controller (executor + safety filter) that ``eval`` and ``deploy`` use, moves the arm.
With ``expert_share`` p > 0, each step the expert's own action is sent instead with
probability p (DAgger's beta mixture). Every stored frame has ``intervention`` = 1: its
action is a correction, not the command that was sent, so ``train --intervention-weight``
weighs these frames against plain demonstrations.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np

from embodied_mm.data.episode import Episode, EpisodeBuffer
from embodied_mm.features import INTERVENTION, TASK, env_obs_to_frame


class DaggerSource:
    """One env, one policy, one expert; built inside the recording worker."""

    def __init__(
        self,
        env_id: str,
        checkpoint: str | Path,
        engine: str = "mujoco",
        mode: str = "open_loop",
        expert_share: float = 0.0,
        env_kwargs: dict[str, Any] | None = None,
    ) -> None:
        if not 0.0 <= expert_share <= 1.0:
            raise ValueError(f"expert_share must be in [0, 1], got {expert_share}")
        from embodied_mm.data.recorder import control_fps
        from embodied_mm.envs.expert import make_expert
        from embodied_mm.runtime.adapters.sim import SimRobot
        from embodied_mm.runtime.controller import ControlSpec, robot_sim_controller
        from embodied_mm.runtime.inference import LocalPolicy

        self.robot = SimRobot(env_id, seed=None, engine=engine, **(env_kwargs or {}))
        self.robot.connect()
        base = self.robot.env.unwrapped
        self.fps = control_fps(self.robot.env, env_id)
        self.robot_type = str(getattr(base, "robot_type", "panda"))
        self.state_names = getattr(base, "state_names", None)
        self.expert = make_expert(self.robot.env)
        policy = LocalPolicy.from_checkpoint(checkpoint, with_plan=False)
        self.controller = robot_sim_controller(
            ControlSpec(mode=mode, hz=float(self.fps)), policy, self.robot
        )
        self.expert_share = expert_share

    def episode(self, seed: int) -> Episode:
        """The policy's episode from ``reset(seed)``, every frame labelled by the expert;
        ``success`` is the policy's (the expert only labels)."""
        robot, controller = self.robot, self.controller
        robot.reset_episode(seed)
        controller.reset()
        task = str(robot.task)
        rng = np.random.default_rng(seed)
        buffer = EpisodeBuffer()
        while True:
            obs = robot.env_observation
            label, plan = self.expert.act(obs)  # (D,) what the expert would do here
            buffer.add(env_obs_to_frame(obs, task), label, plan, {INTERVENTION: 1})
            frame = dict(robot.get_observation().frame)
            frame[TASK] = task
            _, safe = controller.step(frame, robot.hold_action())
            sent = label if rng.random() < self.expert_share else safe.action
            robot.send_action(np.asarray(sent, dtype=np.float32))
            if robot.episode_done or safe.stop:
                break
        return buffer.finish(seed=seed, success=bool(robot.info.get("is_success", False)))

    def close(self) -> None:
        self.controller.close()
        self.robot.disconnect()


def dagger_source(
    env_id: str,
    checkpoint: str | Path,
    engine: str = "mujoco",
    mode: str = "open_loop",
    expert_share: float = 0.0,
    env_kwargs: dict[str, Any] | None = None,
):
    """A picklable factory for ``record`` (its workers are spawned and rebuild the source)."""
    return functools.partial(
        DaggerSource, env_id, str(checkpoint), engine, mode, expert_share, env_kwargs
    )
