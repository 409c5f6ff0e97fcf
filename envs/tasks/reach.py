"""Move the gripper to a named cube, among other cubes and a can."""

from __future__ import annotations

import numpy as np

from embodied_mm.envs.engine import Engine, ObjectSpec
from embodied_mm.envs.expert import OPEN, Phase
from embodied_mm.envs.tasks.base import (
    Episode,
    Instructions,
    Task,
    can,
    cube,
    named_cube_episode,
)
from embodied_mm.envs.tasks.skills import APPROACH_HEIGHT, UP, cube_grasp_yaw

HOVER = 0.05  # m: the TCP should end this far above the cube's centre (jaws around its top)
SUCCESS_RADIUS = 0.025  # m around that point


class ReachObject(Task):
    name = "reach"
    gym_name = "ReachObject"
    max_steps = 60
    instructions = Instructions(
        train=(
            "reach the {color} cube",
            "move the gripper to the {color} cube",
            "go to the {color} block",
            "put your gripper right above the {color} cube",
            "reach for the {color} block",
        ),
        heldout=(
            "bring the hand close to the {color} block",
            "approach the {color} cube with the gripper",
        ),
    )
    DISTRACTORS = (cube("distractor_cube"), cube("distractor_cube_2"), can("distractor_can"))

    def objects(self) -> tuple[ObjectSpec, ...]:
        return (cube("target"), *self.DISTRACTORS)

    def sample(self, rng: np.random.Generator, randomize_colors: bool) -> Episode:
        return named_cube_episode(rng, self.DISTRACTORS, 0.03, randomize_colors)

    @staticmethod
    def _goal(engine: Engine) -> np.ndarray:
        return engine.object_pose("target")[0] + HOVER * UP

    def is_success(self, engine: Engine, episode: Episode) -> bool:
        return bool(np.linalg.norm(engine.ee_pose()[0] - self._goal(engine)) < SUCCESS_RADIUS)

    def expert_phases(self, episode: Episode) -> list[Phase]:
        phrase = f"{episode.words['color']} cube"
        yaw = cube_grasp_yaw("target")
        return [
            Phase(
                f"move above the {phrase}",
                lambda e: e.object_pose("target")[0] + APPROACH_HEIGHT * UP,
                OPEN,
                yaw=yaw,
                tol=0.015,
                speed=0.035,
            ),
            Phase(f"reach the {phrase}", self._goal, OPEN, yaw=yaw, tol=0.004, speed=0.02),
        ]
