"""Pick up a named cube and lift it, among distractors."""

from __future__ import annotations

import numpy as np

from embodied_mm.envs.engine import Engine, ObjectSpec
from embodied_mm.envs.expert import Phase
from embodied_mm.envs.tasks.base import (
    LIFT_HEIGHT,
    Episode,
    Instructions,
    Task,
    can,
    cube,
    named_cube_episode,
)
from embodied_mm.envs.tasks.skills import cube_grasp_yaw, pick_phases


class PickLift(Task):
    name = "pick_lift"
    gym_name = "PickLift"
    max_steps = 80
    instructions = Instructions(
        train=(
            "pick up the {color} cube",
            "grab the {color} block",
            "lift the {color} cube",
            "pick the {color} block up off the table",
            "take the {color} cube and raise it",
        ),
        heldout=(
            "could you hoist the {color} block into the air",
            "raise the {color} cube above the table",
        ),
    )
    DISTRACTORS = (cube("distractor_cube"), can("distractor_can"))

    def objects(self) -> tuple[ObjectSpec, ...]:
        return (cube("target"), *self.DISTRACTORS)

    def sample(self, rng: np.random.Generator, randomize_colors: bool) -> Episode:
        return named_cube_episode(rng, self.DISTRACTORS, 0.04, randomize_colors)

    def is_success(self, engine: Engine, episode: Episode) -> bool:
        pos, _ = engine.object_pose("target")
        return bool(pos[2] > LIFT_HEIGHT and engine.is_grasped("target"))

    def expert_phases(self, episode: Episode) -> list[Phase]:
        phrase = f"{episode.words['color']} cube"
        return pick_phases("target", phrase, cube_grasp_yaw("target"), lift_to=0.2)
