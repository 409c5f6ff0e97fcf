"""Pick up a named cube and lift it, among distractors."""

from __future__ import annotations

import numpy as np

from embodied_mm.envs.engine import Engine, ObjectSpec
from embodied_mm.envs.expert import Phase
from embodied_mm.envs.tasks import layout
from embodied_mm.envs.tasks.base import (
    CUBE_HALF,
    LIFT_HEIGHT,
    Episode,
    Instructions,
    Task,
    can,
    cube,
    distractors,
    resting_pose,
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
        color = layout.pick_colors(rng, 1)[0]
        xys = layout.sample_xys(rng, [0.03, 0.03, 0.03], gap=0.04)
        episode = Episode(
            poses={"target": resting_pose(xys[0], CUBE_HALF, float(rng.uniform(-np.pi, np.pi)))},
            rgba={"target": layout.color_rgba(color, rng, randomize_colors)},
            words={"color": color},
            roles={"target": "target"},
        )
        distractors(episode, self.DISTRACTORS, xys[1:], rng, {color}, randomize_colors)
        return episode

    def is_success(self, engine: Engine, episode: Episode) -> bool:
        pos, _ = engine.object_pose("target")
        return bool(pos[2] > LIFT_HEIGHT and engine.is_grasped("target"))

    def expert_phases(self, episode: Episode) -> list[Phase]:
        phrase = f"{episode.words['color']} cube"
        return pick_phases("target", phrase, cube_grasp_yaw("target"), lift_to=0.2)
